//! The PostgreSQL backend: the scale-out store several nodes share.
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use crate::db::Pool;
use crate::Result;

pub(crate) async fn connect(url: &str) -> Result<Pool> {
    let pool = PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
    Ok(Pool::Pg(pool))
}
