-- What an ingress receiver keeps about its source across restarts, by name:
-- the topic filters an MQTT session was subscribed to (so those removed from
-- its settings are unsubscribed), and later checkpoints and cursors.
CREATE TABLE ingress_progress (
    org_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (integration_id, name),
    FOREIGN KEY (org_id, integration_id) REFERENCES integrations (org_id, id) ON DELETE CASCADE
);
