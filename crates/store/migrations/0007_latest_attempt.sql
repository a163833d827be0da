-- A delivery's latest attempt lives on its row (with `target` and
-- `last_error`, which already held that attempt's target and error);
-- recording the next attempt first moves it to delivery_attempts. A delivery
-- that succeeds at once, most of them, costs one row update instead of an
-- update and an insert into a second table. Rows written before this keep
-- every attempt in delivery_attempts (last_outcome stays NULL).
ALTER TABLE deliveries ADD COLUMN last_started_at BIGINT;
ALTER TABLE deliveries ADD COLUMN last_duration_ms BIGINT;
ALTER TABLE deliveries ADD COLUMN last_outcome TEXT;
ALTER TABLE deliveries ADD COLUMN last_status_code BIGINT;
ALTER TABLE deliveries ADD COLUMN last_remote_id TEXT;
ALTER TABLE deliveries ADD COLUMN last_excerpt TEXT;
