-- Where each record came from: the API key that posted it (`key_…`), or the
-- ingress integration that received it (`int_…`) with the source's id of the
-- message. Samples (test-send) have none.
ALTER TABLE records ADD COLUMN source TEXT;
ALTER TABLE records ADD COLUMN source_message_id TEXT;
