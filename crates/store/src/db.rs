//! The thin layer that lets one body of SQL run on both drivers: a query is
//! SQL text with `$N` placeholders (both SQLite and PostgreSQL accept them)
//! plus typed arguments; rows are read by column name.
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::postgres::{PgConnection, PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Database, Decode, Encode, Row as _, Type};

use crate::StoreError;

/// A typed argument. Nulls carry their type, as PostgreSQL needs it.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl<K: switchyard_core::IdKind> From<&switchyard_core::Id<K>> for Arg {
    fn from(v: &switchyard_core::Id<K>) -> Self {
        Arg::Text(Some(v.as_str().to_owned()))
    }
}

/// SQL plus its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Q {
    pub sql: Cow<'static, str>,
    pub args: Vec<Arg>,
}

pub(crate) fn q(sql: impl Into<Cow<'static, str>>) -> Q {
    Q { sql: sql.into(), args: Vec::new() }
}

impl Q {
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }
    /// Adds an argument and returns its placeholder (`$3`), for SQL built step by step.
    pub fn arg(&mut self, arg: impl Into<Arg>) -> String {
        self.args.push(arg.into());
        format!("${}", self.args.len())
    }
    pub fn push_sql(&mut self, sql: &str) {
        self.sql.to_mut().push_str(sql);
    }
}

/// SQLite binds `$N` parameters by name, and looking a name up is linear in
/// the number of parameters, so a 4,000-argument multi-row INSERT binds in
/// quadratic time. Plain `?` parameters have no names: this rewrites `$N` to
/// `?` and lists the arguments in order of appearance (repeating reused ones).
pub(crate) fn positional<'a>(sql: &str, args: &'a [Arg]) -> (String, Vec<&'a Arg>) {
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::with_capacity(args.len());
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) {
            let mut n = 0usize;
            while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                n = n * 10 + d.to_digit(10).unwrap_or(0) as usize;
                chars.next();
            }
            order.push(&args[n - 1]);
            out.push('?');
        } else {
            out.push(c);
        }
    }
    (out, order)
}

fn bind_all<'q, 'a: 'q, DB: Database>(
    mut query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    args: impl IntoIterator<Item = &'a Arg>,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    for a in args {
        query = match a {
            Arg::Int(v) => query.bind(*v),
            Arg::Text(v) => query.bind(v.as_deref()),
            Arg::Bool(v) => query.bind(*v),
        };
    }
    query
}

/// A row from either driver.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Pg(PgRow),
}

impl Row {
    pub fn get<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>,
    {
        Ok(match self {
            Row::Sqlite(r) => r.try_get(column)?,
            Row::Pg(r) => r.try_get(column)?,
        })
    }
}

/// A connection from either driver: the one place queries are executed.
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Pg(&'a mut PgConnection),
}

impl Conn<'_> {
    pub async fn fetch_all(&mut self, q: Q) -> Result<Vec<Row>, StoreError> {
        Ok(match self {
            Conn::Sqlite(c) => {
                let (sql, args) = positional(&q.sql, &q.args);
                bind_all(sqlx::query(&sql), args).fetch_all(&mut **c).await?.into_iter().map(Row::Sqlite).collect()
            }
            Conn::Pg(c) => {
                bind_all(sqlx::query(&q.sql), &q.args).fetch_all(&mut **c).await?.into_iter().map(Row::Pg).collect()
            }
        })
    }

    pub async fn fetch_optional(&mut self, q: Q) -> Result<Option<Row>, StoreError> {
        Ok(match self {
            Conn::Sqlite(c) => {
                let (sql, args) = positional(&q.sql, &q.args);
                bind_all(sqlx::query(&sql), args).fetch_optional(&mut **c).await?.map(Row::Sqlite)
            }
            Conn::Pg(c) => bind_all(sqlx::query(&q.sql), &q.args).fetch_optional(&mut **c).await?.map(Row::Pg),
        })
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn execute(&mut self, q: Q) -> Result<u64, StoreError> {
        Ok(match self {
            Conn::Sqlite(c) => {
                let (sql, args) = positional(&q.sql, &q.args);
                bind_all(sqlx::query(&sql), args).execute(&mut **c).await?.rows_affected()
            }
            Conn::Pg(c) => bind_all(sqlx::query(&q.sql), &q.args).execute(&mut **c).await?.rows_affected(),
        })
    }

    /// Runs SQL text with several statements and no arguments (migrations).
    pub async fn execute_script(&mut self, sql: &str) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(c) => {
                sqlx::raw_sql(sql).execute(&mut **c).await?;
            }
            Conn::Pg(c) => {
                sqlx::raw_sql(sql).execute(&mut **c).await?;
            }
        }
        Ok(())
    }
}

/// Runs one statement without arguments. (`sqlx::query`, not `raw_sql`:
/// the latter's future is not provably `Send` inside the store's async traits.)
async fn raw_sqlite(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(drop)
}

async fn raw_pg(conn: &mut PgConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(drop)
}

/// How a transaction reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Synced before commit returns: accepted records, configuration.
    Full,
    /// Safe against a process crash, not a power cut: leases and delivery
    /// results, whose loss only means a delivery is sent again.
    Relaxed,
}

/// The SQLite writer connection inside `BEGIN IMMEDIATE … COMMIT`.
pub(crate) struct SqliteTx {
    conn: sqlx::pool::PoolConnection<Sqlite>,
    committed: bool,
    /// This process's write turn, held to the end.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.committed {
            // Never hand a connection back inside a transaction: closing it rolls back.
            self.conn.close_on_drop();
        }
    }
}

/// A transaction; dropped without `commit`, it rolls back.
pub(crate) enum Tx {
    Sqlite(SqliteTx),
    Pg(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t) => Conn::Sqlite(&mut t.conn),
            Tx::Pg(t) => Conn::Pg(t),
        }
    }
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(mut t) => {
                raw_sqlite(&mut t.conn, "COMMIT").await?;
                t.committed = true;
            }
            Tx::Pg(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// The pools. SQLite allows one writer at a time: writes take turns in
/// process (`turn`) rather than contend for SQLite's lock. Most write through
/// one sqlx connection; the writer's rounds through their own (see
/// `sqlite_round.rs`). Reads go to several reader connections.
#[derive(Clone)]
pub(crate) enum Pool {
    /// `relaxed`: whether the sqlx writer connection is set to `synchronous=NORMAL` now.
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        relaxed: Arc<AtomicBool>,
        rounds: Arc<std::sync::Mutex<crate::sqlite_round::RoundConnection>>,
        turn: Arc<tokio::sync::Mutex<()>>,
    },
    Pg(PgPool),
}

impl Pool {
    /// A write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a read-then-write never fails half-way on a
    /// lock held by another process (the CLI beside a running server).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        self.begin_with(Durability::Full).await
    }

    pub async fn begin_with(&self, durability: Durability) -> Result<Tx, StoreError> {
        Ok(match self {
            Pool::Sqlite { write, relaxed, turn, .. } => {
                let turn = turn.clone().lock_owned().await;
                let mut conn = write.acquire().await?;
                let want = durability == Durability::Relaxed;
                // One writer connection, so this flag is its true state.
                if relaxed.load(Ordering::Relaxed) != want {
                    let pragma = if want { "PRAGMA synchronous = NORMAL" } else { "PRAGMA synchronous = FULL" };
                    raw_sqlite(&mut conn, pragma).await?;
                    relaxed.store(want, Ordering::Relaxed);
                }
                raw_sqlite(&mut conn, "BEGIN IMMEDIATE").await?;
                Tx::Sqlite(SqliteTx { conn, committed: false, _turn: turn })
            }
            Pool::Pg(p) => {
                let mut tx = p.begin().await?;
                if durability == Durability::Relaxed {
                    raw_pg(&mut tx, "SET LOCAL synchronous_commit = off").await?;
                }
                Tx::Pg(tx)
            }
        })
    }

    pub async fn fetch_all(&self, q: Q) -> Result<Vec<Row>, StoreError> {
        match self {
            Pool::Sqlite { read, .. } => Conn::Sqlite(&mut *read.acquire().await?).fetch_all(q).await,
            Pool::Pg(p) => Conn::Pg(&mut *p.acquire().await?).fetch_all(q).await,
        }
    }

    pub async fn fetch_optional(&self, q: Q) -> Result<Option<Row>, StoreError> {
        match self {
            Pool::Sqlite { read, .. } => Conn::Sqlite(&mut *read.acquire().await?).fetch_optional(q).await,
            Pool::Pg(p) => Conn::Pg(&mut *p.acquire().await?).fetch_optional(q).await,
        }
    }

    /// One statement in its own transaction.
    pub async fn execute(&self, q: Q) -> Result<u64, StoreError> {
        self.execute_with(q, Durability::Full).await
    }

    pub async fn execute_with(&self, q: Q, durability: Durability) -> Result<u64, StoreError> {
        let mut tx = self.begin_with(durability).await?;
        let n = tx.conn().execute(q).await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_positional_in_order_of_appearance() {
        let mut args = vec![Arg::from("org"), Arg::from(5i64), Arg::from("x")];
        args.extend((4..=10i64).map(Arg::from));
        let (sql, order) = positional("SELECT '$1' WHERE a = $2 AND o = $1 OR b IN ($3, $1) AND c = $10", &args);
        assert_eq!(sql, "SELECT '$1' WHERE a = ? AND o = ? OR b IN (?, ?) AND c = ?");
        let shown: Vec<String> = order.iter().map(|a| format!("{a:?}")).collect();
        assert_eq!(
            shown,
            ["Int(Some(5))", "Text(Some(\"org\"))", "Text(Some(\"x\"))", "Text(Some(\"org\"))", "Int(Some(10))"]
        );
    }
}
