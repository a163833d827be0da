//! Embedded migrations, applied in order at start, each in its own
//! transaction. On PostgreSQL an advisory lock keeps two nodes starting at
//! once from applying the same migration twice.
use crate::db::{q, Pool, Tx};
use crate::Result;

/// (version, name, SQL). Append only; never edit an applied migration.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "delivery", include_str!("../migrations/0002_delivery.sql")),
    (3, "actions", include_str!("../migrations/0003_actions.sql")),
    (4, "globals", include_str!("../migrations/0004_globals.sql")),
    (5, "recipients", include_str!("../migrations/0005_recipients.sql")),
    (6, "hot path indexes", include_str!("../migrations/0006_hot_path_indexes.sql")),
    (7, "latest attempt", include_str!("../migrations/0007_latest_attempt.sql")),
    (8, "delivery log index", include_str!("../migrations/0008_delivery_log_index.sql")),
    (9, "record source", include_str!("../migrations/0009_record_source.sql")),
    (10, "sent", include_str!("../migrations/0010_sent.sql")),
    (11, "ingress messages", include_str!("../migrations/0011_ingress_messages.sql")),
    (12, "leases", include_str!("../migrations/0012_leases.sql")),
    (13, "secret globals", include_str!("../migrations/0013_secret_globals.sql")),
    (14, "ingress progress", include_str!("../migrations/0014_ingress_progress.sql")),
    (15, "place location", include_str!("../migrations/0015_place_location.sql")),
];

const LOCK_KEY: i64 = 0x5357_5944; // "SWYD"

pub(crate) async fn run(pool: &Pool) -> Result<()> {
    let mut tx = pool.begin().await?;
    if let Tx::Pg(_) = tx {
        tx.conn().fetch_optional(q("SELECT pg_advisory_xact_lock($1)").bind(LOCK_KEY)).await?;
    }
    tx.conn()
        .execute(q("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"))
        .await?;
    let applied: Vec<i64> = tx
        .conn()
        .fetch_all(q("SELECT version FROM schema_migrations"))
        .await?
        .iter()
        .map(|r| r.get("version"))
        .collect::<Result<_>>()?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, ..)| !applied.contains(v)) {
        tracing::info!(version, name, "applying migration");
        tx.conn().execute_script(sql).await?;
        tx.conn()
            .execute(
                q("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                    .bind(*version)
                    .bind(*name)
                    .bind(switchyard_core::now_ms()),
            )
            .await?;
    }
    tx.commit().await
}
