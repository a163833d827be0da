-- Leases: which node runs what when several nodes share one database (an
-- ingress connection: `ingress:<integration id>`). `holder` holds a lease
-- until `expires_at` (ms) and renews it; a node that takes over a lease that
-- expired increments `epoch`. A writer round storing a leased integration's
-- messages checks its holder and epoch in the same transaction, with the row
-- locked, so a node that lost its lease can no longer commit as holder.
-- `state` is the holder's view of what it runs (JSON), for other nodes to show.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    state TEXT
);
