-- The ingress message log: every message an ingress integration received and
-- what became of it, written in the same transaction as its records (and so
-- acknowledged at the source only once both are durable). `source_id` is the
-- source's own id of the message: unique per integration, so a redelivered
-- message is logged once more as a duplicate (without the id) and its records
-- are not stored again. The payload is kept to its first 16 KiB, as text, or
-- as base64 when it is not UTF-8.
CREATE TABLE ingress_messages (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    source_ref TEXT NOT NULL,
    source_id TEXT,
    attributes TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    record_ids TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_encoding TEXT NOT NULL,
    payload_size BIGINT NOT NULL,
    FOREIGN KEY (org_id, integration_id) REFERENCES integrations (org_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX ingress_messages_source_id ON ingress_messages (integration_id, source_id);
CREATE INDEX ingress_messages_log ON ingress_messages (integration_id, id);
CREATE INDEX ingress_messages_outcome ON ingress_messages (integration_id, outcome, id);

-- Reading a device's records back, newest first.
CREATE INDEX records_device ON records (device_id, id);
