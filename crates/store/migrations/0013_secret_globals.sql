-- Secret globals: the organization's secret values (encrypted JSON object,
-- like integrations' secrets), which only secret properties may render.
-- `globals_updated_at`: when the globals last changed (ms), so every node
-- can reconnect the connections templated over them.
ALTER TABLE orgs ADD COLUMN secret_globals TEXT;
ALTER TABLE orgs ADD COLUMN globals_updated_at BIGINT NOT NULL DEFAULT 0;
