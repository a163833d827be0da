-- Actions run asynchronously (test-send, backfill); deliveries they create
-- point back at them so their progress can be counted.
CREATE TABLE actions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    progress TEXT NOT NULL,
    result TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, integration_id) REFERENCES integrations (org_id, id) ON DELETE CASCADE
);
CREATE INDEX actions_integration ON actions (org_id, integration_id, id);

ALTER TABLE deliveries ADD COLUMN action_id TEXT;
CREATE INDEX deliveries_action ON deliveries (action_id) WHERE action_id IS NOT NULL;

-- Sample records (test-send) are kept for the delivery log, never backfilled.
ALTER TABLE records ADD COLUMN sample BOOLEAN NOT NULL DEFAULT FALSE;

-- Retention deletes records that no delivery needs any more.
CREATE INDEX deliveries_record ON deliveries (record_id);
CREATE INDEX deliveries_completed ON deliveries (completed_at) WHERE status IN ('succeeded', 'dead');
CREATE INDEX records_received ON records (received_at);
