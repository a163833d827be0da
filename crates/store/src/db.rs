//! The thin layer that lets one body of SQL run on both drivers: a query is
//! SQL text with `$N` placeholders (both SQLite and PostgreSQL accept them)
//! plus typed arguments; rows are read by column name.
use std::borrow::Cow;

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

fn bind_all<'q, DB: Database>(
    mut query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    args: &'q [Arg],
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
                bind_all(sqlx::query(&q.sql), &q.args).fetch_all(&mut **c).await?.into_iter().map(Row::Sqlite).collect()
            }
            Conn::Pg(c) => {
                bind_all(sqlx::query(&q.sql), &q.args).fetch_all(&mut **c).await?.into_iter().map(Row::Pg).collect()
            }
        })
    }

    pub async fn fetch_optional(&mut self, q: Q) -> Result<Option<Row>, StoreError> {
        Ok(match self {
            Conn::Sqlite(c) => bind_all(sqlx::query(&q.sql), &q.args).fetch_optional(&mut **c).await?.map(Row::Sqlite),
            Conn::Pg(c) => bind_all(sqlx::query(&q.sql), &q.args).fetch_optional(&mut **c).await?.map(Row::Pg),
        })
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn execute(&mut self, q: Q) -> Result<u64, StoreError> {
        Ok(match self {
            Conn::Sqlite(c) => bind_all(sqlx::query(&q.sql), &q.args).execute(&mut **c).await?.rows_affected(),
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

/// A transaction; dropped without `commit`, it rolls back.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Pg(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t) => Conn::Sqlite(t),
            Tx::Pg(t) => Conn::Pg(t),
        }
    }
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Pg(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// The pools. SQLite has one writer connection (SQLite allows one writer at
/// a time; serialising in-process avoids lock contention) and several readers.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Pg(PgPool),
}

impl Pool {
    /// A write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a read-then-write never fails half-way on a
    /// lock held by another process (the CLI beside a running server).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Pool::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Pg(p) => Tx::Pg(p.begin().await?),
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
        let mut tx = self.begin().await?;
        let n = tx.conn().execute(q).await?;
        tx.commit().await?;
        Ok(n)
    }
}
