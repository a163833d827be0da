//! The outbox: claiming due deliveries, recording attempts, the delivery log.
use async_trait::async_trait;
use switchyard_core::{
    Attempt, AttemptOutcome, Delivery, DeliveryId, DeliveryStatus, IntegrationId, OrgId, Record, RecordId, RecordSource,
};

use crate::db::{q, Conn, Durability, Pool, Row};
use crate::statements::{state_values, states_head, states_tail};
use crate::telemetry::{insert_records, push_row};
use crate::{
    from_json, page_clause, paged, Batch, Claimed, Completion, DeliveryFilter, DeliveryStore, IngestOutcome,
    LoggedDelivery, Page, PageRequest, PendingSummary, Result, SqlStore, StoreError,
};

const COLUMNS: &str = "id, integration_id, record_id, status, attempts, next_attempt_at, created_at, updated_at, \
                       completed_at, target, last_error";
const DUE: &str = "status IN ('pending', 'retrying')";

fn status(text: &str) -> Result<DeliveryStatus> {
    DeliveryStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("delivery status `{text}`")))
}

fn delivery_from(row: &Row) -> Result<Delivery> {
    let status = status(&row.get::<String>("status")?)?;
    let due = matches!(status, DeliveryStatus::Pending | DeliveryStatus::Retrying);
    Ok(Delivery {
        id: DeliveryId::from_stored(row.get("id")?),
        integration_id: IntegrationId::from_stored(row.get("integration_id")?),
        record_id: RecordId::from_stored(row.get("record_id")?),
        success: status == DeliveryStatus::Succeeded,
        status,
        attempt_count: row.get::<i64>("attempts")? as u32,
        next_attempt_at: if due { Some(row.get("next_attempt_at")?) } else { None },
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        completed_at: row.get("completed_at")?,
        target: row.get("target")?,
        last_error: row.get("last_error")?,
    })
}

fn outcome(text: &str) -> Result<AttemptOutcome> {
    AttemptOutcome::parse(text).ok_or_else(|| StoreError::Corrupt(format!("attempt outcome `{text}`")))
}

fn attempt_from(row: &Row) -> Result<Attempt> {
    Ok(Attempt {
        number: row.get::<i64>("number")? as u32,
        started_at: row.get("started_at")?,
        duration_ms: row.get("duration_ms")?,
        outcome: outcome(&row.get::<String>("outcome")?)?,
        status_code: row.get::<Option<i64>>("status_code")?.map(|c| c as u16),
        remote_id: row.get("remote_id")?,
        error: row.get("error")?,
        response_excerpt: row.get("response_excerpt")?,
        target: row.get("target")?,
        sent: row.get("sent")?,
    })
}

/// The latest attempt's columns on a delivery's row (besides `target` and `last_error`).
const LATEST: &str =
    "last_started_at, last_duration_ms, last_outcome, last_status_code, last_remote_id, last_excerpt, last_sent";

/// The attempt kept on a delivery's row, if it holds one (rows written
/// before migration 7 keep all theirs in `delivery_attempts`).
fn latest_attempt(row: &Row) -> Result<Option<Attempt>> {
    let Some(text) = row.get::<Option<String>>("last_outcome")? else { return Ok(None) };
    Ok(Some(Attempt {
        number: row.get::<i64>("attempts")? as u32,
        started_at: row.get::<Option<i64>>("last_started_at")?.unwrap_or_default(),
        duration_ms: row.get::<Option<i64>>("last_duration_ms")?.unwrap_or_default(),
        outcome: outcome(&text)?,
        status_code: row.get::<Option<i64>>("last_status_code")?.map(|c| c as u16),
        remote_id: row.get("last_remote_id")?,
        error: row.get("last_error")?,
        response_excerpt: row.get("last_excerpt")?,
        target: row.get("target")?,
        sent: row.get("last_sent")?,
    }))
}

/// A delivery's state after a completion.
pub(crate) struct NewState<'a> {
    /// When the attempt ended.
    pub now: i64,
    pub next_attempt_at: i64,
    pub completed_at: Option<i64>,
    /// The last error; cleared by a delivered attempt.
    pub last_error: Option<&'a str>,
}

pub(crate) fn new_state(c: &Completion) -> NewState<'_> {
    let a = &c.attempt;
    let now = a.started_at + a.duration_ms;
    let finished = matches!(c.status, DeliveryStatus::Succeeded | DeliveryStatus::Dead);
    NewState {
        now,
        next_attempt_at: c.next_attempt_at.unwrap_or(now),
        completed_at: finished.then_some(now),
        last_error: if a.outcome == AttemptOutcome::Delivered { None } else { a.error.as_deref() },
    }
}

/// Copies deliveries' latest attempts (kept on their rows) into
/// `delivery_attempts`; the caller says which rows, then adds `MOVE_GUARD`.
pub(crate) const MOVE_LATEST: &str = "INSERT INTO delivery_attempts (delivery_id, number, started_at, duration_ms, \
     outcome, status_code, remote_id, error, response_excerpt, target, sent) SELECT id, attempts, last_started_at, \
     last_duration_ms, last_outcome, last_status_code, last_remote_id, last_error, last_excerpt, target, last_sent \
     FROM deliveries";
/// Only a row holding an attempt moves it, once.
pub(crate) const MOVE_GUARD: &str = "AND last_outcome IS NOT NULL ON CONFLICT (delivery_id, number) DO NOTHING";

/// Records attempts and the deliveries' new states, 200 results a statement:
/// each delivery's previous attempt moves from its row to `delivery_attempts`
/// (none before a first attempt), and the new one takes its place. A result
/// older than the delivery's latest attempt changes nothing.
pub(crate) async fn write_completions(conn: &mut Conn<'_>, results: &[Completion]) -> Result<()> {
    for chunk in results.chunks(200) {
        let later: Vec<&Completion> = chunk.iter().filter(|c| c.attempt.number > 1).collect();
        if !later.is_empty() {
            let mut moves = q("WITH v (delivery, number) AS (VALUES ");
            for c in &later {
                push_row(&mut moves, vec![(&c.id).into(), (c.attempt.number as i64).into()]);
            }
            moves
                .push_sql(&format!(") {MOVE_LATEST} JOIN v ON id = v.delivery WHERE attempts < v.number {MOVE_GUARD}"));
            conn.execute(moves).await?;
        }
        let mut states = q(states_head());
        for c in chunk {
            push_row(&mut states, state_values(c));
        }
        states.push_sql(states_tail());
        conn.execute(states).await?;
    }
    Ok(())
}

#[async_trait]
impl DeliveryStore for SqlStore {
    async fn write(&self, batches: &[Batch], completions: &[Completion], now: i64) -> Result<Vec<IngestOutcome>> {
        if batches.is_empty() && completions.is_empty() {
            return Ok(vec![]);
        }
        // Accepted records must be on disk before the answer; results alone may lag
        // (losing one only means the delivery is sent again).
        let durability = if batches.is_empty() { Durability::Relaxed } else { Durability::Full };
        if let Pool::Sqlite { rounds, turn, .. } = &self.pool {
            let _turn = turn.lock().await;
            let mut conn = rounds.lock().unwrap_or_else(|e| e.into_inner());
            return crate::sqlite_round::write(&mut conn, durability, batches, completions, now);
        }
        let mut tx = self.pool.begin_with(durability).await?;
        let outcomes = insert_records(&mut tx.conn(), batches, now).await?;
        write_completions(&mut tx.conn(), completions).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        exclude: &[IntegrationId],
    ) -> Result<Vec<Claimed>> {
        if let Pool::Sqlite { rounds, turn, .. } = &self.pool {
            let _turn = turn.lock().await;
            let (rounds, exclude) = (rounds.clone(), exclude.to_vec());
            return tokio::task::spawn_blocking(move || {
                let mut conn = rounds.lock().unwrap_or_else(|e| e.into_inner());
                crate::sqlite_round::claim(&mut conn, now, lease_until, limit, &exclude)
            })
            .await
            .map_err(|e| StoreError::Corrupt(format!("the claim stopped: {e}")))?;
        }
        let mut query =
            q("UPDATE deliveries SET lease_until = $1, next_attempt_at = $1 WHERE id IN (SELECT id FROM deliveries WHERE ")
            .bind(lease_until)
            .bind(now);
        query.push_sql(&format!(
            "{DUE} AND next_attempt_at <= $2 AND lease_until <= $2 \
             AND EXISTS (SELECT 1 FROM integrations i WHERE i.id = deliveries.integration_id AND i.enabled = TRUE)"
        ));
        if !exclude.is_empty() {
            let list: Vec<String> = exclude.iter().map(|i| query.arg(i)).collect();
            query.push_sql(&format!(" AND integration_id NOT IN ({})", list.join(", ")));
        }
        let limit = query.arg(limit as i64);
        query.push_sql(&format!(" ORDER BY next_attempt_at LIMIT {limit}"));
        if let Pool::Pg(_) = self.pool {
            // Several nodes claim at once; each row goes to one of them.
            query.push_sql(" FOR UPDATE SKIP LOCKED");
        }
        query.push_sql(") RETURNING id, org_id, integration_id, record_id, attempts, retry_from, created_at");
        let mut tx = self.pool.begin_with(Durability::Relaxed).await?;
        let rows = tx.conn().fetch_all(query).await?;
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let mut bodies_query = q("SELECT id, body FROM records WHERE id IN (");
        let ids: Vec<String> = rows.iter().map(|r| r.get::<String>("record_id")).collect::<Result<_>>()?;
        let placeholders: Vec<String> = ids.iter().map(|id| bodies_query.arg(id.as_str())).collect();
        bodies_query.push_sql(&format!("{})", placeholders.join(", ")));
        let bodies: std::collections::HashMap<String, String> = tx
            .conn()
            .fetch_all(bodies_query)
            .await?
            .iter()
            .map(|r| Ok((r.get::<String>("id")?, r.get::<String>("body")?)))
            .collect::<Result<_>>()?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                let record: String = r.get("record_id")?;
                Ok(Claimed {
                    id: DeliveryId::from_stored(r.get("id")?),
                    org_id: OrgId::from_stored(r.get("org_id")?),
                    integration_id: IntegrationId::from_stored(r.get("integration_id")?),
                    attempts: r.get::<i64>("attempts")? as u32,
                    retry_from: r.get::<i64>("retry_from")? as u32,
                    created_at: r.get("created_at")?,
                    lease_until,
                    record: None,
                    body: bodies
                        .get(&record)
                        .cloned()
                        .ok_or_else(|| StoreError::Corrupt(format!("record {record} missing")))?,
                })
            })
            .collect()
    }

    async fn renew_leases(&self, leases: &[(DeliveryId, i64)], until: i64) -> Result<Vec<DeliveryId>> {
        // Leases given together end together: one statement per end, not per delivery.
        let mut by_end: std::collections::BTreeMap<i64, Vec<&DeliveryId>> = std::collections::BTreeMap::new();
        for (id, held) in leases {
            by_end.entry(*held).or_default().push(id);
        }
        let mut renewed = Vec::with_capacity(leases.len());
        let mut tx = self.pool.begin_with(Durability::Relaxed).await?;
        for (held, ids) in by_end {
            for chunk in ids.chunks(400) {
                let mut query =
                    q("UPDATE deliveries SET lease_until = $1, next_attempt_at = $1 WHERE lease_until = $2 AND ")
                        .bind(until)
                        .bind(held);
                let list: Vec<String> = chunk.iter().map(|id| query.arg(*id)).collect();
                query.push_sql(&format!("{DUE} AND id IN ({}) RETURNING id", list.join(", ")));
                for row in tx.conn().fetch_all(query).await? {
                    renewed.push(DeliveryId::from_stored(row.get("id")?));
                }
            }
        }
        tx.commit().await?;
        Ok(renewed)
    }

    async fn postpone(&self, ids: &[DeliveryId], until: i64) -> Result<()> {
        for chunk in ids.chunks(400) {
            let mut query = q("UPDATE deliveries SET next_attempt_at = $1, lease_until = 0 WHERE id IN (").bind(until);
            let list: Vec<String> = chunk.iter().map(|id| query.arg(id)).collect();
            query.push_sql(&format!("{})", list.join(", ")));
            self.pool.execute_with(query, Durability::Relaxed).await?;
        }
        Ok(())
    }

    async fn pending_summary(&self) -> Result<Vec<PendingSummary>> {
        let rows = self
            .pool
            .fetch_all(q(format!(
                "SELECT org_id, integration_id, COUNT(*) AS n, MIN(created_at) AS oldest FROM deliveries WHERE {DUE} \
                 GROUP BY org_id, integration_id"
            )))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingSummary {
                    org_id: OrgId::from_stored(r.get("org_id")?),
                    integration_id: IntegrationId::from_stored(r.get("integration_id")?),
                    pending: r.get::<i64>("n")? as u64,
                    oldest_created_at: r.get("oldest")?,
                })
            })
            .collect()
    }

    async fn purge(&self, before: i64, limit: usize) -> Result<(u64, u64)> {
        let deliveries = self
            .pool
            .execute_with(
                // Finished before `before` means made before it: the id range bounds the scan.
                q("DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE id < $3 \
                   AND status IN ('succeeded', 'dead') AND completed_at < $1 LIMIT $2)")
                .bind(before)
                .bind(limit as i64)
                .bind(DeliveryId::first_at(before)),
                Durability::Relaxed,
            )
            .await?;
        let records = self
            .pool
            .execute_with(
                q("DELETE FROM records WHERE id IN (SELECT r.id FROM records r WHERE r.id < $1 \
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.record_id = r.id) LIMIT $2)")
                .bind(RecordId::first_at(before))
                .bind(limit as i64),
                Durability::Relaxed,
            )
            .await?;
        Ok((deliveries, records))
    }

    async fn release_leases(&self) -> Result<u64> {
        // A leased delivery is due when its lease ends: released, it is due now.
        let now = switchyard_core::now_ms();
        self.pool
            .execute(
                q(format!(
                    "UPDATE deliveries SET lease_until = 0, next_attempt_at = $1 WHERE {DUE} AND lease_until > 0"
                ))
                .bind(now),
            )
            .await
    }

    async fn list_deliveries(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        let mut query = q(format!("SELECT {COLUMNS} FROM deliveries WHERE org_id = $1 AND integration_id = $2"))
            .bind(org)
            .bind(integration);
        if let Some(s) = filter.status {
            let p = query.arg(s.as_str());
            query.push_sql(&format!(" AND status = {p}"));
        }
        if let Some(from) = filter.from {
            let p = query.arg(from);
            query.push_sql(&format!(" AND created_at >= {p}"));
        }
        if let Some(to) = filter.to {
            let p = query.arg(to);
            query.push_sql(&format!(" AND created_at < {p}"));
        }
        page_clause(&mut query, "id", page);
        let items = self.pool.fetch_all(query).await?.iter().map(delivery_from).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |d| d.id.to_string()))
    }

    async fn get_delivery(&self, org: &OrgId, id: &DeliveryId) -> Result<Option<LoggedDelivery>> {
        let Some(row) = self
            .pool
            .fetch_optional(
                q(format!("SELECT {COLUMNS}, {LATEST} FROM deliveries WHERE org_id = $1 AND id = $2"))
                    .bind(org)
                    .bind(id),
            )
            .await?
        else {
            return Ok(None);
        };
        let delivery = delivery_from(&row)?;
        let latest = latest_attempt(&row)?;
        let body = self
            .pool
            .fetch_optional(
                q("SELECT body, source, source_message_id FROM records WHERE org_id = $1 AND id = $2")
                    .bind(org)
                    .bind(&delivery.record_id),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("record {} missing", delivery.record_id)))?;
        let record: Record = from_json("records.body", &body.get::<String>("body")?)?;
        let source = RecordSource::from_stored(body.get("source")?, body.get("source_message_id")?);
        let mut attempts: Vec<Attempt> = self
            .pool
            .fetch_all(q("SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY number").bind(id))
            .await?
            .iter()
            .map(attempt_from)
            .collect::<Result<_>>()?;
        if let Some(latest) = latest.filter(|l| attempts.iter().all(|a| a.number < l.number)) {
            attempts.push(latest);
        }
        Ok(Some(LoggedDelivery { delivery, record, source, attempts }))
    }

    async fn resend(&self, org: &OrgId, id: &DeliveryId, now: i64) -> Result<bool> {
        let n = self
            .pool
            .execute(
                q("UPDATE deliveries SET status = 'pending', retry_from = attempts, next_attempt_at = $3, lease_until = 0, \
                   updated_at = $3, completed_at = NULL WHERE org_id = $1 AND id = $2 AND status IN ('succeeded', 'dead')")
                .bind(org)
                .bind(id)
                .bind(now),
            )
            .await?;
        Ok(n == 1)
    }
}
