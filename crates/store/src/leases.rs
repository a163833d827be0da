//! Leases: one node runs each leased thing (an ingress connection) when
//! several share the database. Taken when free or expired (a takeover
//! increments the epoch), renewed by their holder, dropped when it stops;
//! a writer round checks a batch's [`Fence`] against its lease.
use async_trait::async_trait;

use crate::db::{q, Conn};
use crate::telemetry::push_row;
use crate::{Result, SqlStore};

/// A lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
    pub expires_at: i64,
    /// What the holder says it is doing (JSON).
    pub state: Option<String>,
}

/// The lease a batch is written under: it is stored only if `holder` still
/// holds `name` at `epoch` when its round commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes or renews, for `holder` until `until`, each named lease that is
    /// free, expired at `now`, or held by `holder` already; returns those
    /// `holder` holds now, with their epochs. Renewing keeps the epoch; a
    /// takeover increments it.
    async fn take_leases(&self, names: &[String], holder: &str, now: i64, until: i64) -> Result<Vec<(String, i64)>>;
    /// Ends the named leases `holder` holds (it stopped running them): another node may take them at once.
    async fn drop_leases(&self, names: &[String], holder: &str) -> Result<()>;
    /// Records what the holder is doing, for other nodes to show (only while it holds the lease).
    async fn set_lease_state(&self, name: &str, holder: &str, state: &str) -> Result<()>;
    async fn get_lease(&self, name: &str) -> Result<Option<Lease>>;
}

/// Batches in 200s (5 arguments a row).
const CHUNK: usize = 200;

#[async_trait]
impl LeaseStore for SqlStore {
    async fn take_leases(&self, names: &[String], holder: &str, now: i64, until: i64) -> Result<Vec<(String, i64)>> {
        let mut held = Vec::with_capacity(names.len());
        for chunk in names.chunks(CHUNK) {
            let mut take = q("INSERT INTO leases (name, holder, epoch, expires_at) VALUES ");
            for name in chunk {
                push_row(&mut take, vec![name.as_str().into(), holder.into(), 1i64.into(), until.into()]);
            }
            let now = take.arg(now);
            take.push_sql(&format!(
                " ON CONFLICT (name) DO UPDATE SET \
                 epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END, \
                 holder = excluded.holder, expires_at = excluded.expires_at, \
                 state = CASE WHEN leases.holder = excluded.holder THEN leases.state ELSE NULL END \
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= {now} RETURNING name, epoch"
            ));
            let mut tx = self.pool.begin().await?;
            let rows = tx.conn().fetch_all(take).await?;
            tx.commit().await?;
            for row in rows {
                held.push((row.get("name")?, row.get("epoch")?));
            }
        }
        Ok(held)
    }

    async fn drop_leases(&self, names: &[String], holder: &str) -> Result<()> {
        for chunk in names.chunks(CHUNK) {
            let mut drop = q("UPDATE leases SET expires_at = 0 WHERE holder = $1 AND name IN (").bind(holder);
            let list: Vec<String> = chunk.iter().map(|n| drop.arg(n.as_str())).collect();
            drop.push_sql(&format!("{})", list.join(", ")));
            self.pool.execute(drop).await?;
        }
        Ok(())
    }

    async fn set_lease_state(&self, name: &str, holder: &str, state: &str) -> Result<()> {
        let set = q("UPDATE leases SET state = $1 WHERE name = $2 AND holder = $3").bind(state).bind(name).bind(holder);
        self.pool.execute_with(set, crate::db::Durability::Relaxed).await.map(drop)
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>> {
        let found = self
            .pool
            .fetch_optional(q("SELECT name, holder, epoch, expires_at, state FROM leases WHERE name = $1").bind(name))
            .await?;
        found
            .map(|row| {
                Ok(Lease {
                    name: row.get("name")?,
                    holder: row.get("holder")?,
                    epoch: row.get("epoch")?,
                    expires_at: row.get("expires_at")?,
                    state: row.get("state")?,
                })
            })
            .transpose()
    }
}

/// Which of `fences` their holders still hold, inside the caller's
/// transaction, the rows locked (PostgreSQL) until it ends: a takeover waits
/// for this round to commit, and a round after a takeover finds the new epoch.
pub(crate) async fn holding(conn: &mut Conn<'_>, fences: &[&Fence], lock: bool) -> Result<Vec<Fence>> {
    if fences.is_empty() {
        return Ok(vec![]);
    }
    let mut find = q("SELECT name, holder, epoch FROM leases WHERE name IN (");
    let list: Vec<String> = fences.iter().map(|f| find.arg(f.name.as_str())).collect();
    find.push_sql(&format!("{}){}", list.join(", "), if lock { " FOR SHARE" } else { "" }));
    let mut held = Vec::new();
    for row in conn.fetch_all(find).await? {
        let found = Fence { name: row.get("name")?, holder: row.get("holder")?, epoch: row.get("epoch")? };
        if fences.contains(&&found) {
            held.push(found);
        }
    }
    Ok(held)
}
