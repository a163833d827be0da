-- The delivery log's index (an integration's deliveries in id order) without
-- the organization ahead of the integration: integration ids are unique on
-- their own, and every delivery a round stores writes this index, comparing
-- the organization's id (the same in every entry) at each step down the
-- tree. The log's query still filters by organization, on the row.
DROP INDEX deliveries_integration;
CREATE INDEX deliveries_integration ON deliveries (integration_id, id);
