-- The data path: triggers route records to egress integrations; each
-- (record, integration) pair is one delivery; each try is an attempt.
CREATE TABLE triggers (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kinds TEXT NOT NULL,
    objects TEXT NOT NULL,
    scope TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, integration_id) REFERENCES integrations (org_id, id) ON DELETE CASCADE
);
CREATE INDEX triggers_integration ON triggers (org_id, integration_id, id);

-- The telemetry log: append-only. `client_id` is the sender's record id.
CREATE TABLE records (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    client_id TEXT,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    property TEXT NOT NULL,
    ts BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (org_id, client_id)
);
CREATE INDEX records_time ON records (org_id, ts);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    -- attempts made before the last resend: the retry schedule restarts there
    retry_from BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    target TEXT,
    last_error TEXT,
    FOREIGN KEY (org_id, integration_id) REFERENCES integrations (org_id, id) ON DELETE CASCADE
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_integration ON deliveries (org_id, integration_id, id);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    status_code BIGINT,
    remote_id TEXT,
    error TEXT,
    response_excerpt TEXT,
    target TEXT,
    PRIMARY KEY (delivery_id, number)
);
