//! Recipients of notification integrations. Every change also bumps the
//! integration's `updated_at`, so senders built from it are rebuilt.
use async_trait::async_trait;
use switchyard_core::{IntegrationId, OrgId, Recipient, RecipientId, RecipientKind, RecipientStatus, Verification};

use crate::db::{q, Row, Tx};
use crate::{page_clause, paged, Page, PageRequest, RecipientStore, Result, SqlStore, StoreError};

const COLUMNS: &str = "id, integration_id, kind, address, name, status, code_hash, code_expires_at, code_attempts, \
                       created_at, updated_at";

fn recipient_from(row: &Row) -> Result<Recipient> {
    let kind: String = row.get("kind")?;
    let status: String = row.get("status")?;
    let verification = match row.get::<Option<String>>("code_hash")? {
        Some(code_hash) => Some(Verification {
            code_hash,
            expires_at: row.get::<Option<i64>>("code_expires_at")?.unwrap_or(0),
            attempts: row.get::<i64>("code_attempts")? as u32,
        }),
        None => None,
    };
    Ok(Recipient {
        id: RecipientId::from_stored(row.get("id")?),
        integration_id: IntegrationId::from_stored(row.get("integration_id")?),
        kind: RecipientKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("recipient kind `{kind}`")))?,
        address: row.get("address")?,
        name: row.get("name")?,
        status: RecipientStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("recipient status `{status}`")))?,
        verification,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

async fn touch(tx: &mut Tx, org: &OrgId, integration: &IntegrationId, now: i64) -> Result<()> {
    // Strictly later, so a sender built in the same millisecond is still rebuilt.
    tx.conn()
        .execute(
            q("UPDATE integrations SET updated_at = CASE WHEN updated_at >= $3 THEN updated_at + 1 ELSE $3 END \
               WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(integration)
            .bind(now),
        )
        .await
        .map(drop)
}

#[async_trait]
impl RecipientStore for SqlStore {
    async fn create_recipient(&self, org: &OrgId, r: &Recipient) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let v = r.verification.as_ref();
        let result = tx
            .conn()
            .execute(
                q("INSERT INTO recipients (id, org_id, integration_id, kind, address, name, status, code_hash, \
                   code_expires_at, code_attempts, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                .bind(&r.id)
                .bind(org)
                .bind(&r.integration_id)
                .bind(r.kind.as_str())
                .bind(r.address.as_str())
                .bind(r.name.as_deref())
                .bind(r.status.as_str())
                .bind(v.map(|v| v.code_hash.as_str()))
                .bind(v.map(|v| v.expires_at))
                .bind(v.map(|v| v.attempts as i64).unwrap_or(0))
                .bind(r.created_at)
                .bind(r.updated_at),
            )
            .await;
        match result {
            Err(e) if e.is_unique_violation() => {
                return Err(StoreError::Conflict(format!("`{}` is already a recipient", r.address)))
            }
            other => other.map(drop)?,
        }
        touch(&mut tx, org, &r.integration_id, r.updated_at).await?;
        tx.commit().await
    }

    async fn get_recipient(&self, org: &OrgId, id: &RecipientId) -> Result<Option<Recipient>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!("SELECT {COLUMNS} FROM recipients WHERE org_id = $1 AND id = $2")).bind(org).bind(id),
            )
            .await?;
        row.as_ref().map(recipient_from).transpose()
    }

    async fn find_recipient(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        address: &str,
    ) -> Result<Option<Recipient>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!(
                    "SELECT {COLUMNS} FROM recipients WHERE org_id = $1 AND integration_id = $2 AND address = $3"
                ))
                .bind(org)
                .bind(integration)
                .bind(address),
            )
            .await?;
        row.as_ref().map(recipient_from).transpose()
    }

    async fn list_recipients(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        page: &PageRequest,
    ) -> Result<Page<Recipient>> {
        let mut query = q(format!("SELECT {COLUMNS} FROM recipients WHERE org_id = $1 AND integration_id = $2"))
            .bind(org)
            .bind(integration);
        page_clause(&mut query, "id", page);
        let items = self.pool.fetch_all(query).await?.iter().map(recipient_from).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |r| r.id.to_string()))
    }

    async fn active_recipients(&self, org: &OrgId, integration: &IntegrationId) -> Result<Vec<Recipient>> {
        let rows = self
            .pool
            .fetch_all(
                q(format!(
                    "SELECT {COLUMNS} FROM recipients WHERE org_id = $1 AND integration_id = $2 AND status = $3 ORDER BY id"
                ))
                .bind(org)
                .bind(integration)
                .bind(RecipientStatus::Active.as_str()),
            )
            .await?;
        rows.iter().map(recipient_from).collect()
    }

    async fn update_recipient(&self, org: &OrgId, r: &Recipient) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let v = r.verification.as_ref();
        let n = tx
            .conn()
            .execute(
                q("UPDATE recipients SET name = $3, status = $4, code_hash = $5, code_expires_at = $6, code_attempts = $7, \
                   updated_at = $8 WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(&r.id)
                .bind(r.name.as_deref())
                .bind(r.status.as_str())
                .bind(v.map(|v| v.code_hash.as_str()))
                .bind(v.map(|v| v.expires_at))
                .bind(v.map(|v| v.attempts as i64).unwrap_or(0))
                .bind(r.updated_at),
            )
            .await?;
        if n > 0 {
            touch(&mut tx, org, &r.integration_id, r.updated_at).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn delete_recipient(&self, org: &OrgId, r: &Recipient, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n =
            tx.conn().execute(q("DELETE FROM recipients WHERE org_id = $1 AND id = $2").bind(org).bind(&r.id)).await?;
        if n > 0 {
            touch(&mut tx, org, &r.integration_id, now).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}
