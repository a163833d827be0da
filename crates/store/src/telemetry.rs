//! Ingest: records and their fan-out, written in one transaction, for as
//! many requests as are waiting (a group commit), as multi-row statements
//! through sqlx: PostgreSQL's writer rounds, and backfills on both backends.
//! SQLite's rounds run in `sqlite_round.rs`.
use std::collections::HashSet;

use switchyard_core::{ActionId, OrgId, RecordId};

use crate::db::{q, Conn, Q};
use crate::statements::{
    delivery_values, message_values, record_ids, record_values, DELIVERIES, MESSAGES, RECORDS, REPLAY,
};
use crate::{Batch, IngestOutcome, NewDelivery, NewRecord, Result};

/// Rows per multi-row INSERT (well under both drivers' parameter limits).
const CHUNK: usize = 400;

/// Appends `($a, $b, …)` for one row of a multi-row INSERT.
pub(crate) fn push_row(query: &mut Q, args: Vec<crate::db::Arg>) {
    let placeholders: Vec<String> = args.into_iter().map(|a| query.arg(a)).collect();
    let sep = if query.sql.ends_with("VALUES ") { "" } else { ", " };
    query.push_sql(&format!("{sep}({})", placeholders.join(", ")));
}

/// One pending delivery per row, due now; `lease_until` > 0 leases it to
/// this node already, and then it is due when that lease ends (see
/// `DeliveryStore::claim_due`); `action` marks deliveries an action (a
/// backfill) created.
pub(crate) async fn insert_pending(
    conn: &mut Conn<'_>,
    rows: &[(&OrgId, &NewDelivery, &RecordId)],
    action: Option<&ActionId>,
    now: i64,
) -> Result<u64> {
    let mut inserted = 0;
    for chunk in rows.chunks(CHUNK) {
        let mut insert = q(DELIVERIES.head());
        for (org, delivery, record) in chunk {
            push_row(&mut insert, delivery_values(org, delivery, record, action, now));
        }
        inserted += conn.execute(insert).await?;
    }
    Ok(inserted)
}

/// Logs the batches' messages, then stores the records (skipping sender ids
/// seen before, and every record of a message logged before) and their
/// fan-out, inside the caller's transaction: one outcome per batch, in order.
pub(crate) async fn insert_records(conn: &mut Conn<'_>, batches: &[Batch], now: i64) -> Result<Vec<IngestOutcome>> {
    let mut outcomes = vec![IngestOutcome::default(); batches.len()];
    let fences: Vec<&crate::Fence> = batches.iter().filter_map(|b| b.fence.as_ref()).collect();
    let lock = matches!(conn, Conn::Pg(_));
    let held = crate::leases::holding(conn, &fences, lock).await?;
    for (b, batch) in batches.iter().enumerate() {
        outcomes[b].fenced = batch.fence.as_ref().is_some_and(|f| !held.contains(f));
    }
    let logged = insert_messages(conn, batches, &outcomes).await?;
    let progress =
        crate::statements::progress_of(batches.iter().zip(&outcomes).filter(|(_, o)| !o.fenced).map(|(b, _)| b));
    if !progress.is_empty() {
        let mut upsert = q(crate::statements::PROGRESS.head());
        for (org, integration, name, value) in progress {
            push_row(&mut upsert, crate::statements::progress_values(org, integration, name, value, now));
        }
        upsert.push_sql(crate::statements::PROGRESS.tail());
        conn.execute(upsert).await?;
    }
    for (b, batch) in batches.iter().enumerate() {
        if !outcomes[b].fenced && batch.message.as_ref().is_some_and(|m| !logged.contains(m.id.as_str())) {
            outcomes[b].duplicate_message = true;
        }
    }
    let rows: Vec<(usize, usize, &OrgId, &NewRecord)> = batches
        .iter()
        .enumerate()
        .filter(|(b, _)| !outcomes[*b].duplicate_message && !outcomes[*b].fenced)
        .flat_map(|(b, batch)| batch.records.iter().enumerate().map(move |(i, r)| (b, i, &batch.org, r)))
        .collect();
    let mut stored: HashSet<String> = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        let mut insert = q(RECORDS.head());
        for (_, _, org, r) in chunk {
            push_row(&mut insert, record_values(org, r));
        }
        insert.push_sql(RECORDS.tail());
        insert.push_sql(" RETURNING id");
        for row in conn.fetch_all(insert).await? {
            stored.insert(row.get("id")?);
        }
    }
    let mut fanout: Vec<(&OrgId, &NewDelivery, &RecordId)> = Vec::new();
    for (b, i, org, r) in &rows {
        if stored.contains(r.id.as_str()) {
            outcomes[*b].stored += 1;
            outcomes[*b].deliveries += r.targets.len();
            fanout.extend(r.targets.iter().map(|t| (*org, t, &r.id)));
        } else {
            outcomes[*b].duplicates += 1;
            outcomes[*b].skipped.push(*i);
        }
    }
    for (batch, outcome) in batches.iter().zip(outcomes.iter_mut()) {
        if outcome.fenced {
            outcome.skipped = (0..batch.records.len()).collect();
            continue;
        }
        if outcome.duplicate_message {
            outcome.duplicates = batch.records.len();
            outcome.skipped = (0..batch.records.len()).collect();
        } else if let Some(m) = batch.message.as_ref().filter(|_| !outcome.skipped.is_empty()) {
            let kept = batch.records.iter().filter(|r| stored.contains(r.id.as_str()));
            conn.execute(
                q("UPDATE ingress_messages SET record_ids = $1 WHERE id = $2").bind(record_ids(kept)).bind(&m.id),
            )
            .await?;
        }
    }
    insert_pending(conn, &fanout, None, now).await?;
    Ok(outcomes)
}

/// Logs the batches' messages (not those fenced out); returns the ids of
/// those logged as new. A message whose source id was logged before is
/// logged as a duplicate.
async fn insert_messages(
    conn: &mut Conn<'_>,
    batches: &[Batch],
    outcomes: &[IngestOutcome],
) -> Result<HashSet<String>> {
    let (replays, messages): (Vec<_>, Vec<_>) = batches
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| !o.fenced)
        .filter_map(|(b, _)| b.message.as_ref().map(|m| (b, m)))
        .partition(|(_, m)| m.replay);
    let mut logged = HashSet::with_capacity(messages.len());
    for (batch, m) in replays {
        let update =
            q(REPLAY).bind(m.outcome.as_str()).bind(m.reason.as_deref()).bind(record_ids(batch.records.iter()));
        if conn.execute(update.bind(&m.id)).await? == 1 {
            logged.insert(m.id.to_string());
        }
    }
    for chunk in messages.chunks(CHUNK) {
        let mut insert = q(MESSAGES.head());
        for (batch, m) in chunk {
            push_row(&mut insert, message_values(&batch.org, m, &record_ids(batch.records.iter()), false));
        }
        insert.push_sql(MESSAGES.tail());
        insert.push_sql(" RETURNING id");
        for row in conn.fetch_all(insert).await? {
            logged.insert(row.get("id")?);
        }
        let seen: Vec<_> = chunk.iter().filter(|(_, m)| !logged.contains(m.id.as_str())).collect();
        if !seen.is_empty() {
            let mut insert = q(MESSAGES.head());
            for (batch, m) in seen {
                push_row(&mut insert, message_values(&batch.org, m, "[]", true));
            }
            conn.execute(insert).await?;
        }
    }
    Ok(logged)
}
