-- Who notification integrations (e-mail, SMS, phone) reach. Phone numbers
-- stay pending until their code is confirmed; only the code's hash is kept.
CREATE TABLE recipients (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    code_hash TEXT,
    code_expires_at BIGINT,
    code_attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, id),
    UNIQUE (org_id, integration_id, address),
    FOREIGN KEY (org_id, integration_id) REFERENCES integrations (org_id, id) ON DELETE CASCADE
);
CREATE INDEX recipients_integration ON recipients (org_id, integration_id, id);
