-- Secret globals: the organization's secret values (encrypted JSON object,
-- like integrations' secrets), which only secret properties may render.
ALTER TABLE orgs ADD COLUMN secret_globals TEXT;
