//! The SQLite backend: WAL journal, full fsync at commit (accepted means
//! durable), foreign keys on, and a busy timeout so the CLI can work beside a
//! running server.
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::Pool;
use crate::Result;

pub(crate) async fn connect(url: &str) -> Result<Pool> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let write = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    let read = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
    Ok(Pool::Sqlite { read, write, relaxed: Default::default() })
}
