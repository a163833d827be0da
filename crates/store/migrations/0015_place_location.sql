-- Where a Place is (JSON: latitude, longitude, timezone), for weather integrations.
ALTER TABLE places ADD COLUMN location TEXT;
