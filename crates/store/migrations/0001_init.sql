-- Every tenant table carries org_id, and every reference between tenant rows
-- is a composite (org_id, id) foreign key: the database itself refuses a
-- link from one organization's row to another's.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    custom_integrations BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE TABLE places (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    parent_id TEXT,
    name TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, parent_id) REFERENCES places (org_id, id)
);
CREATE INDEX places_parent ON places (org_id, parent_id, id);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    place_id TEXT NOT NULL,
    name TEXT NOT NULL,
    device_type TEXT NOT NULL,
    external_ids TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, place_id) REFERENCES places (org_id, id)
);
CREATE INDEX devices_place ON devices (org_id, place_id, id);

CREATE TABLE integrations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    type_key TEXT NOT NULL,
    direction TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    properties TEXT NOT NULL,
    -- the secret property values as one JSON object, encrypted (never plaintext)
    secrets TEXT NOT NULL,
    metadata TEXT NOT NULL,
    resource_paths TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, id)
);
CREATE INDEX integrations_org ON integrations (org_id, id);

CREATE TABLE resource_mappings (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    place_id TEXT,
    device_id TEXT,
    device_type TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (integration_id, external_id),
    FOREIGN KEY (org_id, integration_id) REFERENCES integrations (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, place_id) REFERENCES places (org_id, id),
    FOREIGN KEY (org_id, device_id) REFERENCES devices (org_id, id),
    CHECK ((place_id IS NULL) <> (device_id IS NULL))
);
CREATE INDEX mappings_integration ON resource_mappings (org_id, integration_id, id);
CREATE INDEX mappings_place ON resource_mappings (place_id);
CREATE INDEX mappings_device ON resource_mappings (device_id);
