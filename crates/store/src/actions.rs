//! Actions and the record queries they need.
use async_trait::async_trait;
use switchyard_core::{Action, ActionId, ActionStatus, DeliveryStatus, IntegrationId, OrgId, Record, RecordId};

use crate::db::{q, Row};
use crate::telemetry::insert_pending;
use crate::{
    from_json, json_text, ActionFilter, ActionStore, Completion, NewDelivery, NewRecord, Page, PageRequest, Result,
    SqlStore, StoreError,
};

const COLUMNS: &str =
    "id, integration_id, kind, status, params, progress, result, error, created_at, updated_at, finished_at";

fn action_from(row: &Row) -> Result<Action> {
    let status: String = row.get("status")?;
    Ok(Action {
        id: ActionId::from_stored(row.get("id")?),
        integration_id: IntegrationId::from_stored(row.get("integration_id")?),
        kind: row.get("kind")?,
        status: ActionStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("action status `{status}`")))?,
        params: from_json("actions.params", &row.get::<String>("params")?)?,
        progress: from_json("actions.progress", &row.get::<String>("progress")?)?,
        result: row.get::<Option<String>>("result")?.map(|r| from_json("actions.result", &r)).transpose()?,
        error: row.get("error")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        finished_at: row.get("finished_at")?,
    })
}

#[async_trait]
impl ActionStore for SqlStore {
    async fn create_action(&self, org: &OrgId, a: &Action) -> Result<()> {
        self.pool
            .execute(
                q(format!("INSERT INTO actions (org_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"))
                    .bind(org)
                    .bind(&a.id)
                    .bind(&a.integration_id)
                    .bind(a.kind.as_str())
                    .bind(a.status.as_str())
                    .bind(json_text(&a.params))
                    .bind(json_text(&a.progress))
                    .bind(a.result.as_ref().map(json_text))
                    .bind(a.error.clone())
                    .bind(a.created_at)
                    .bind(a.updated_at)
                    .bind(a.finished_at),
            )
            .await
            .map(drop)
    }

    async fn get_action(&self, org: &OrgId, id: &ActionId) -> Result<Option<Action>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!("SELECT {COLUMNS} FROM actions WHERE org_id = $1 AND id = $2")).bind(org).bind(id),
            )
            .await?;
        row.as_ref().map(action_from).transpose()
    }

    async fn update_action(&self, org: &OrgId, a: &Action) -> Result<bool> {
        let cancelled = ActionStatus::Cancelled.as_str();
        self.pool
            .execute(
                q("UPDATE actions SET status = $3, progress = $4, result = $5, error = $6, updated_at = $7, finished_at = $8 \
                   WHERE org_id = $1 AND id = $2 AND status <> $9")
                .bind(org)
                .bind(&a.id)
                .bind(a.status.as_str())
                .bind(json_text(&a.progress))
                .bind(a.result.as_ref().map(json_text))
                .bind(a.error.clone())
                .bind(a.updated_at)
                .bind(a.finished_at)
                .bind(cancelled),
            )
            .await
            .map(|n| n == 1)
    }

    async fn cancel_action(&self, org: &OrgId, id: &ActionId, now: i64) -> Result<Option<Action>> {
        self.pool
            .execute(
                q("UPDATE actions SET status = $3, updated_at = $4, finished_at = $4 \
                   WHERE org_id = $1 AND id = $2 AND status IN ($5, $6)")
                .bind(org)
                .bind(id)
                .bind(ActionStatus::Cancelled.as_str())
                .bind(now)
                .bind(ActionStatus::Queued.as_str())
                .bind(ActionStatus::Running.as_str()),
            )
            .await?;
        self.get_action(org, id).await
    }

    async fn list_actions(&self, org: &OrgId, filter: &ActionFilter, page: &PageRequest) -> Result<Page<Action>> {
        let mut query = q(format!("SELECT {COLUMNS} FROM actions WHERE org_id = $1")).bind(org);
        if let Some(integration) = &filter.integration {
            let p = query.arg(integration);
            query.push_sql(&format!(" AND integration_id = {p}"));
        }
        if let Some(kind) = &filter.kind {
            let p = query.arg(kind.as_str());
            query.push_sql(&format!(" AND kind = {p}"));
        }
        if !filter.statuses.is_empty() {
            let ps: Vec<String> = filter.statuses.iter().map(|s| query.arg(s.as_str())).collect();
            query.push_sql(&format!(" AND status IN ({})", ps.join(", ")));
        }
        crate::messages::newest_first(&mut query, page);
        let items = self.pool.fetch_all(query).await?.iter().map(action_from).collect::<Result<Vec<_>>>()?;
        Ok(crate::paged(items, page, |a| a.id.to_string()))
    }

    async fn action_deliveries(&self, org: &OrgId, id: &ActionId) -> Result<Vec<(DeliveryStatus, u64)>> {
        let rows = self
            .pool
            .fetch_all(
                q("SELECT status, COUNT(*) AS n FROM deliveries WHERE org_id = $1 AND action_id = $2 GROUP BY status")
                    .bind(org)
                    .bind(id),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.get("status")?;
                let status =
                    DeliveryStatus::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("delivery status `{s}`")))?;
                Ok((status, r.get::<i64>("n")? as u64))
            })
            .collect()
    }

    async fn records_between(
        &self,
        org: &OrgId,
        from: i64,
        to: i64,
        after: Option<(i64, RecordId)>,
        limit: usize,
    ) -> Result<Vec<(RecordId, Record)>> {
        let mut query =
            q("SELECT id, ts, body FROM records WHERE org_id = $1 AND ts >= $2 AND ts < $3 AND sample = $4")
                .bind(org)
                .bind(from)
                .bind(to)
                .bind(false);
        if let Some((ts, id)) = &after {
            let (t, i) = (query.arg(*ts), query.arg(id));
            query.push_sql(&format!(" AND (ts > {t} OR (ts = {t} AND id > {i}))"));
        }
        let l = query.arg(limit as i64);
        query.push_sql(&format!(" ORDER BY ts, id LIMIT {l}"));
        let rows = self.pool.fetch_all(query).await?;
        rows.iter()
            .map(|r| Ok((RecordId::from_stored(r.get("id")?), from_json("records.body", &r.get::<String>("body")?)?)))
            .collect()
    }

    async fn enqueue(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        records: &[RecordId],
        action: &ActionId,
        now: i64,
    ) -> Result<usize> {
        let deliveries: Vec<NewDelivery> = records.iter().map(|_| NewDelivery::new(integration.clone())).collect();
        let rows: Vec<(&OrgId, &NewDelivery, &RecordId)> =
            deliveries.iter().zip(records).map(|(d, r)| (org, d, r)).collect();
        let mut tx = self.pool.begin().await?;
        let n = insert_pending(&mut tx.conn(), &rows, Some(action), now).await? as usize;
        tx.commit().await?;
        Ok(n)
    }

    async fn record_test_send(
        &self,
        org: &OrgId,
        record: &NewRecord,
        integration: &IntegrationId,
        action: &ActionId,
        c: &Completion,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let r = &record.record;
        tx.conn()
            .execute(
                q("INSERT INTO records (id, org_id, client_id, device_id, kind, property, ts, received_at, body, sample) \
                   VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&record.id)
                .bind(org)
                .bind(&r.device_id)
                .bind(r.kind.as_str())
                .bind(r.property.as_str())
                .bind(r.timestamp)
                .bind(r.received_at)
                .bind(record.body.as_str())
                .bind(true),
            )
            .await?;
        let a = &c.attempt;
        let done = a.started_at + a.duration_ms;
        tx.conn()
            .execute(
                q("INSERT INTO deliveries (id, org_id, integration_id, record_id, status, attempts, retry_from, next_attempt_at, \
                   lease_until, created_at, updated_at, completed_at, target, last_error, action_id) \
                   VALUES ($1, $2, $3, $4, $5, 1, 0, $6, 0, $6, $7, $7, $8, $9, $10)")
                .bind(&c.id)
                .bind(org)
                .bind(integration)
                .bind(&record.id)
                .bind(c.status.as_str())
                .bind(a.started_at)
                .bind(done)
                .bind(a.target.clone())
                .bind(a.error.clone())
                .bind(action),
            )
            .await?;
        crate::deliveries::write_completions(&mut tx.conn(), std::slice::from_ref(c)).await?;
        tx.commit().await
    }

    async fn fail_stale_actions(&self, stale_before: i64, now: i64) -> Result<u64> {
        self.pool
            .execute(
                q("UPDATE actions SET status = 'failed', error = 'interrupted: the node running it stopped', updated_at = $2, \
                   finished_at = $2 WHERE status IN ('queued', 'running') AND updated_at < $1 \
                   AND NOT (kind = 'backfill' AND integration_id IN (SELECT id FROM integrations WHERE direction = 'INGRESS'))")
                .bind(stale_before)
                .bind(now),
            )
            .await
    }
}
