//! The SQLite backend: WAL journal, full fsync at commit (accepted means
//! durable), foreign keys on, and a busy timeout so the CLI can work beside a
//! running server.
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use std::sync::{Arc, Mutex};

use crate::db::Pool;
use crate::sqlite_round::RoundConnection;
use crate::{Result, StoreError};

pub(crate) async fn connect(url: &str) -> Result<Pool> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let file = options.get_filename().to_string_lossy();
    if file == ":memory:" || file.starts_with("file:sqlx-in-memory") {
        return Err(StoreError::UnsupportedUrl(format!("{url} (an in-memory database: use a file)")));
    }
    let write = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    let read = SqlitePoolOptions::new().max_connections(4).connect_with(options.clone()).await?;
    let rounds = RoundConnection::open(options.get_filename())?;
    Ok(Pool::Sqlite {
        read,
        write,
        relaxed: Default::default(),
        rounds: Arc::new(Mutex::new(rounds)),
        turn: Default::default(),
    })
}
