//! Reading back what came in: an ingress integration's message log, and
//! stored records (a device's, newest first) with their sources.
use async_trait::async_trait;
use switchyard_core::{
    IntegrationId, LoggedMessage, MessageId, MessageOutcome, OrgId, Record, RecordId, RecordSource, Secret,
};

use crate::db::{q, Durability, Row};
use crate::{
    from_json, paged, MessageFilter, Page, PageRequest, RecordFilter, Result, SqlStore, StoreError, StoredRecord,
};

#[async_trait]
pub trait IngressStore: Send + Sync {
    /// An integration's message log, newest first.
    async fn list_messages(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Page<LoggedMessage>>;
    /// Stored records (test-send samples aside), newest first.
    async fn list_records(&self, org: &OrgId, filter: &RecordFilter, page: &PageRequest) -> Result<Page<StoredRecord>>;
    /// Deletes up to `limit` log entries of messages received before `before`.
    async fn purge_messages(&self, before: i64, limit: usize) -> Result<u64>;
    /// What an ingress receiver kept under `name` (see [`IngressStore::set_progress`]).
    async fn get_progress(&self, org: &OrgId, integration: &IntegrationId, name: &str) -> Result<Option<String>>;
    /// Keeps `value` under `name` for the integration's receiver, durably; gone with the integration.
    async fn set_progress(&self, org: &OrgId, integration: &IntegrationId, name: &str, value: &str) -> Result<()>;
    /// A secret the receiver keeps (a refreshed OAuth token), encrypted like
    /// the integration's own secrets.
    async fn get_kept_secret(&self, org: &OrgId, integration: &IntegrationId, name: &str) -> Result<Option<Secret>>;
    async fn set_kept_secret(&self, org: &OrgId, integration: &IntegrationId, name: &str, value: &Secret)
        -> Result<()>;
}

/// The progress row a kept secret is sealed in.
fn kept(name: &str) -> String {
    format!("secret:{name}")
}

/// Appends `AND id < $n ORDER BY id DESC LIMIT $m`: newest first.
pub(crate) fn newest_first(query: &mut crate::db::Q, page: &PageRequest) {
    if let Some(before) = &page.after {
        let p = query.arg(before.as_str());
        query.push_sql(&format!(" AND id < {p}"));
    }
    let limit = query.arg(page.limit as i64 + 1);
    query.push_sql(&format!(" ORDER BY id DESC LIMIT {limit}"));
}

fn message_from(row: &Row) -> Result<LoggedMessage> {
    let outcome: String = row.get("outcome")?;
    Ok(LoggedMessage {
        id: MessageId::from_stored(row.get("id")?),
        integration_id: IntegrationId::from_stored(row.get("integration_id")?),
        received_at: row.get("received_at")?,
        source_ref: row.get("source_ref")?,
        source_id: row.get("source_id")?,
        attributes: from_json("ingress_messages.attributes", &row.get::<String>("attributes")?)?,
        outcome: MessageOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("message outcome `{outcome}`")))?,
        reason: row.get("reason")?,
        record_ids: from_json::<Vec<String>>("ingress_messages.record_ids", &row.get::<String>("record_ids")?)?
            .into_iter()
            .map(RecordId::from_stored)
            .collect(),
        payload: row.get("payload")?,
        payload_encoding: row.get("payload_encoding")?,
        payload_size: row.get::<i64>("payload_size")? as u64,
    })
}

#[async_trait]
impl IngressStore for SqlStore {
    async fn get_progress(&self, org: &OrgId, integration: &IntegrationId, name: &str) -> Result<Option<String>> {
        let find = q("SELECT value FROM ingress_progress WHERE org_id = $1 AND integration_id = $2 AND name = $3")
            .bind(org)
            .bind(integration)
            .bind(name);
        self.pool.fetch_optional(find).await?.map(|row| row.get("value")).transpose()
    }

    async fn set_progress(&self, org: &OrgId, integration: &IntegrationId, name: &str, value: &str) -> Result<()> {
        use crate::statements::{progress_values, PROGRESS};
        let mut set = q(PROGRESS.head());
        crate::telemetry::push_row(
            &mut set,
            progress_values(org, integration.as_str(), name, value, switchyard_core::now_ms()),
        );
        set.push_sql(PROGRESS.tail());
        self.pool.execute(set).await.map(drop)
    }

    async fn get_kept_secret(&self, org: &OrgId, integration: &IntegrationId, name: &str) -> Result<Option<Secret>> {
        let Some(sealed) = self.get_progress(org, integration, &kept(name)).await? else { return Ok(None) };
        Ok(self.open_secrets("ingress_progress.value", &sealed)?.remove(name))
    }

    async fn set_kept_secret(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        name: &str,
        value: &Secret,
    ) -> Result<()> {
        let sealed = self.seal(&[(name.to_owned(), value.clone())].into());
        self.set_progress(org, integration, &kept(name), &sealed).await
    }

    async fn list_messages(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Page<LoggedMessage>> {
        let mut query =
            q("SELECT * FROM ingress_messages WHERE org_id = $1 AND integration_id = $2").bind(org).bind(integration);
        if let Some(outcome) = filter.outcome {
            let p = query.arg(outcome.as_str());
            query.push_sql(&format!(" AND outcome = {p}"));
        }
        newest_first(&mut query, page);
        let items = self.pool.fetch_all(query).await?.iter().map(message_from).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |m| m.id.to_string()))
    }

    async fn list_records(&self, org: &OrgId, filter: &RecordFilter, page: &PageRequest) -> Result<Page<StoredRecord>> {
        let mut query = q("SELECT id, body, source, source_message_id FROM records WHERE org_id = $1 AND sample = $2")
            .bind(org)
            .bind(false);
        if let Some(device) = &filter.device {
            let p = query.arg(device);
            query.push_sql(&format!(" AND device_id = {p}"));
        }
        if let Some(property) = &filter.property {
            let p = query.arg(property.as_str());
            query.push_sql(&format!(" AND property = {p}"));
        }
        if let Some(kind) = filter.kind {
            let p = query.arg(kind.as_str());
            query.push_sql(&format!(" AND kind = {p}"));
        }
        if let Some(from) = filter.from {
            let p = query.arg(from);
            query.push_sql(&format!(" AND ts >= {p}"));
        }
        if let Some(to) = filter.to {
            let p = query.arg(to);
            query.push_sql(&format!(" AND ts < {p}"));
        }
        newest_first(&mut query, page);
        let items = self
            .pool
            .fetch_all(query)
            .await?
            .iter()
            .map(|r| {
                Ok(StoredRecord {
                    id: RecordId::from_stored(r.get("id")?),
                    record: from_json::<Record>("records.body", &r.get::<String>("body")?)?,
                    source: RecordSource::from_stored(r.get("source")?, r.get("source_message_id")?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |r| r.id.to_string()))
    }

    async fn purge_messages(&self, before: i64, limit: usize) -> Result<u64> {
        self.pool
            .execute_with(
                q("DELETE FROM ingress_messages WHERE id IN (SELECT id FROM ingress_messages WHERE id < $1 LIMIT $2)")
                    .bind(MessageId::first_at(before))
                    .bind(limit as i64),
                Durability::Relaxed,
            )
            .await
    }
}
