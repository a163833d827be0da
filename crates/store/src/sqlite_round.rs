//! The writer's round on SQLite: one transaction on a connection of its own,
//! run on the calling thread. sqlx runs each SQLite connection on a worker
//! thread and every statement is a hand-over to it and back; on a busy
//! machine each hand-over (a thread wake-up) costs more than the statement.
//! Here a round is statements run in place, prepared once per connection.
//! Rounds take the same in-process write turn as every other write. Claims
//! run here too (on a blocking thread), in one statement. A round with
//! records is synced by an `fdatasync` of the log after a `NORMAL` commit.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, OpenFlags};
use switchyard_core::{DeliveryId, IntegrationId, OrgId};

use crate::db::Durability;
use crate::deliveries::{MOVE_GUARD, MOVE_LATEST};
use crate::statements::{
    delivery_params, message_params, record_ids, record_params, state_params, states_one_row, DELIVERIES, MESSAGES,
    RECORDS, REPLAY,
};
use crate::{Batch, Claimed, Completion, IngestOutcome, Result, StoreError};

pub(crate) struct RoundConnection {
    db: rusqlite::Connection,
    /// The write-ahead log, opened for syncing (while the database is open
    /// the log file stays the same file, reset in place).
    wal: PathBuf,
    log: Option<File>,
}

impl RoundConnection {
    /// Opens the database file (created and migrated already) as the pools
    /// do (WAL journal, foreign keys, a busy timeout), committing with
    /// `synchronous=NORMAL`: `write` syncs the log itself where it must.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let db = rusqlite::Connection::open_with_flags(path, flags)?;
        db.busy_timeout(Duration::from_secs(10))?;
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Self { db, wal: wal.into(), log: None })
    }

    /// `fdatasync` of the log: after a `NORMAL` commit, what a `FULL` commit
    /// does (SQLite's own sync there is an `fsync`, which also writes the
    /// file's times: measurably slower here, for nothing durability needs).
    fn sync_log(&mut self) -> std::io::Result<()> {
        if self.log.is_none() {
            self.log = Some(File::open(&self.wal)?);
        }
        let synced = self.log.as_ref().map_or(Ok(()), File::sync_data);
        if synced.is_err() {
            self.log = None;
        }
        synced
    }
}

/// Stores the batches and records the completions in one transaction, on
/// the calling thread, and returns once a round holding records is on disk.
/// Results alone are not synced (a lost one is a resend).
pub(crate) fn write(
    conn: &mut RoundConnection,
    durability: Durability,
    batches: &[Batch],
    completions: &[Completion],
    now: i64,
) -> Result<Vec<IngestOutcome>> {
    let db = &conn.db;
    db.execute_batch("BEGIN IMMEDIATE")?;
    let outcome = statements(db, batches, completions, now).and_then(|o| {
        db.execute_batch("COMMIT")?;
        Ok(o)
    });
    if outcome.is_err() && !db.is_autocommit() {
        // Never leave the connection inside a transaction.
        let _ = db.execute_batch("ROLLBACK");
    }
    let outcomes = outcome?;
    if durability == Durability::Full {
        conn.sync_log().map_err(|e| StoreError::Corrupt(format!("syncing the log to disk failed: {e}")))?;
    }
    Ok(outcomes)
}

fn statements(
    db: &rusqlite::Connection,
    batches: &[Batch],
    completions: &[Completion],
    now: i64,
) -> Result<Vec<IngestOutcome>> {
    let mut outcomes = vec![IngestOutcome::default(); batches.len()];
    if !batches.is_empty() {
        let mut records = db.prepare_cached(RECORDS.one_row())?;
        let mut deliveries = db.prepare_cached(DELIVERIES.one_row())?;
        for (batch, outcome) in batches.iter().zip(outcomes.iter_mut()) {
            let org = &batch.org;
            if let Some(f) = &batch.fence {
                // One writer: nothing can take the lease over while this round runs.
                let mut held =
                    db.prepare_cached("SELECT 1 FROM leases WHERE name = ?1 AND holder = ?2 AND epoch = ?3")?;
                if !held.exists(params![f.name, f.holder, f.epoch])? {
                    outcome.fenced = true;
                    outcome.skipped = (0..batch.records.len()).collect();
                    continue;
                }
            }
            if let Some(m) = &batch.message {
                if !m.progress.is_empty() {
                    let mut progress = db.prepare_cached(crate::statements::PROGRESS.one_row())?;
                    for (name, value) in &m.progress {
                        progress.execute(params![org.as_str(), m.integration_id.as_str(), name, value, now])?;
                    }
                }
                let ids = record_ids(batch.records.iter());
                let logged = if m.replay {
                    let mut replay = db.prepare_cached(REPLAY)?;
                    replay.execute(params![m.outcome.as_str(), m.reason, ids, m.id.as_str()])? == 1
                } else {
                    let mut messages = db.prepare_cached(MESSAGES.one_row())?;
                    messages.execute(message_params(org, m, &ids, false))? == 1
                        || messages.execute(message_params(org, m, &ids, true)).map(|_| false)?
                };
                if !logged {
                    outcome.duplicate_message = true;
                    outcome.duplicates = batch.records.len();
                    outcome.skipped = (0..batch.records.len()).collect();
                    continue;
                }
            }
            for (i, r) in batch.records.iter().enumerate() {
                let stored = records.execute(record_params(org, r))? == 1;
                if !stored {
                    outcome.duplicates += 1;
                    outcome.skipped.push(i);
                    continue;
                }
                outcome.stored += 1;
                outcome.deliveries += r.targets.len();
                for t in &r.targets {
                    deliveries.execute(delivery_params(org, t, &r.id, now))?;
                }
            }
            if let Some(m) = batch.message.as_ref().filter(|_| !outcome.skipped.is_empty()) {
                let kept = batch.records.iter().enumerate().filter(|(i, _)| !outcome.skipped.contains(i));
                let ids = record_ids(kept.map(|(_, r)| r));
                db.prepare_cached("UPDATE ingress_messages SET record_ids = ?1 WHERE id = ?2")?
                    .execute(params![ids, m.id.as_str()])?;
            }
        }
    }
    if !completions.is_empty() {
        let mut moves = db.prepare_cached(&format!("{MOVE_LATEST} WHERE id = ?1 AND attempts < ?2 {MOVE_GUARD}"))?;
        let mut states = db.prepare_cached(states_one_row())?;
        for c in completions {
            let a = &c.attempt;
            // Nothing comes before a first attempt: most results skip this.
            if a.number > 1 {
                moves.execute(params![c.id.as_str(), a.number])?;
            }
            states.execute(state_params(c))?;
        }
    }
    Ok(outcomes)
}

/// Leases up to `limit` due deliveries (oldest due first) of enabled
/// integrations not in `exclude`, with their records' bodies, in one
/// statement. Results of a crash are only re-sends, so it is not synced.
pub(crate) fn claim(
    conn: &mut RoundConnection,
    now: i64,
    lease_until: i64,
    limit: usize,
    exclude: &[IntegrationId],
) -> Result<Vec<Claimed>> {
    let excluded = serde_json::to_string(&exclude.iter().map(|i| i.as_str()).collect::<Vec<_>>())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut claim = conn.db.prepare_cached(
        "UPDATE deliveries SET lease_until = ?1, next_attempt_at = ?1 WHERE id IN (SELECT id FROM deliveries \
         WHERE status IN ('pending', 'retrying') AND next_attempt_at <= ?2 AND lease_until <= ?2 \
         AND EXISTS (SELECT 1 FROM integrations i WHERE i.id = deliveries.integration_id AND i.enabled = TRUE) \
         AND integration_id NOT IN (SELECT value FROM json_each(?3)) ORDER BY next_attempt_at LIMIT ?4) \
         RETURNING id, org_id, integration_id, attempts, retry_from, created_at, record_id, \
         (SELECT body FROM records r WHERE r.id = deliveries.record_id)",
    )?;
    let rows = claim.query_map(params![lease_until, now, excluded, limit as i64], |row| {
        Ok((
            Claimed {
                id: DeliveryId::from_stored(row.get(0)?),
                org_id: OrgId::from_stored(row.get(1)?),
                integration_id: IntegrationId::from_stored(row.get(2)?),
                attempts: row.get(3)?,
                retry_from: row.get(4)?,
                created_at: row.get(5)?,
                lease_until,
                body: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
                record: None,
            },
            row.get::<_, String>(6)?,
        ))
    })?;
    let mut claimed = Vec::new();
    for row in rows {
        let (c, record) = row?;
        if c.body.is_empty() {
            return Err(StoreError::Corrupt(format!("record {record} missing")));
        }
        claimed.push(c);
    }
    Ok(claimed)
}
