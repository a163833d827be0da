//! Test support: each test gets its own PostgreSQL schema in the `test`
//! database, so tests run in parallel without seeing each other's rows.
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

/// The server tests use: `SWITCHYARD_TEST_DATABASE_URL`, or the local one.
pub fn postgres_base_url() -> String {
    std::env::var("SWITCHYARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates a fresh schema and returns a URL whose connections use it.
/// Schemas left by tests more than an hour old are dropped on the way.
pub async fn fresh_postgres_url() -> String {
    let base = postgres_base_url();
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "this test needs PostgreSQL at {} ({e}); `scripts/services` checks and starts every service the suite needs",
                crate::redact_url(&base)
            )
        });
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let stale: Vec<(String,)> = sqlx::query_as("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sy\\_t\\_%'")
        .fetch_all(&mut conn)
        .await
        .expect("list test schemas");
    for (name,) in stale {
        let born = name.split('_').nth(2).and_then(|t| t.parse::<u64>().ok()).unwrap_or(now);
        if now.saturating_sub(born) > 3600 {
            let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).execute(&mut conn).await;
        }
    }
    let schema = format!("sy_t_{now}_{:08x}", rand_u32());
    sqlx::raw_sql(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.expect("create test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos());
    h.finish() as u32
}
