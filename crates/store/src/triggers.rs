use async_trait::async_trait;
use switchyard_core::{DeviceId, IntegrationId, OrgId, PlaceId, RecordKind, ResourcePath, Trigger, TriggerId};

use crate::db::{q, Row};
use crate::{from_json, json_text, page_clause, paged, Page, PageRequest, Result, SqlStore, StoreError, TriggerStore};

const COLUMNS: &str =
    "t.id, t.integration_id, t.name, t.kinds, t.objects, t.scope, t.active, t.created_at, t.updated_at";

fn trigger_from(row: &Row) -> Result<Trigger> {
    let kinds: Vec<String> = from_json("triggers.kinds", &row.get::<String>("kinds")?)?;
    let scope: Vec<String> = from_json("triggers.scope", &row.get::<String>("scope")?)?;
    Ok(Trigger {
        id: TriggerId::from_stored(row.get("id")?),
        integration_id: IntegrationId::from_stored(row.get("integration_id")?),
        name: row.get("name")?,
        kinds: kinds
            .iter()
            .map(|k| RecordKind::parse(k).ok_or_else(|| StoreError::Corrupt(format!("trigger kind `{k}`"))))
            .collect::<Result<_>>()?,
        objects: from_json("triggers.objects", &row.get::<String>("objects")?)?,
        scope: scope.iter().map(|p| ResourcePath::parse(p).map_err(StoreError::Corrupt)).collect::<Result<_>>()?,
        active: row.get("active")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn kinds_text(t: &Trigger) -> String {
    json_text(&t.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())
}

fn scope_text(t: &Trigger) -> String {
    json_text(&t.scope.iter().map(ToString::to_string).collect::<Vec<_>>())
}

#[async_trait]
impl TriggerStore for SqlStore {
    async fn create_trigger(&self, org: &OrgId, t: &Trigger) -> Result<()> {
        self.pool
            .execute(
                q("INSERT INTO triggers (id, org_id, integration_id, name, kinds, objects, scope, active, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(&t.id)
                .bind(org)
                .bind(&t.integration_id)
                .bind(t.name.as_str())
                .bind(kinds_text(t))
                .bind(json_text(&t.objects))
                .bind(scope_text(t))
                .bind(t.active)
                .bind(t.created_at)
                .bind(t.updated_at),
            )
            .await
            .map(drop)
    }

    async fn get_trigger(&self, org: &OrgId, id: &TriggerId) -> Result<Option<Trigger>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!("SELECT {COLUMNS} FROM triggers t WHERE t.org_id = $1 AND t.id = $2")).bind(org).bind(id),
            )
            .await?;
        row.as_ref().map(trigger_from).transpose()
    }

    async fn list_triggers(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        page: &PageRequest,
    ) -> Result<Page<Trigger>> {
        let mut query = q(format!("SELECT {COLUMNS} FROM triggers t WHERE t.org_id = $1 AND t.integration_id = $2"))
            .bind(org)
            .bind(integration);
        page_clause(&mut query, "t.id", page);
        let items = self.pool.fetch_all(query).await?.iter().map(trigger_from).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |t| t.id.to_string()))
    }

    async fn update_trigger(&self, org: &OrgId, t: &Trigger) -> Result<bool> {
        let n = self
            .pool
            .execute(
                q("UPDATE triggers SET name = $3, kinds = $4, objects = $5, scope = $6, active = $7, updated_at = $8 \
                   WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(&t.id)
                .bind(t.name.as_str())
                .bind(kinds_text(t))
                .bind(json_text(&t.objects))
                .bind(scope_text(t))
                .bind(t.active)
                .bind(t.updated_at),
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_trigger(&self, org: &OrgId, id: &TriggerId) -> Result<bool> {
        Ok(self.pool.execute(q("DELETE FROM triggers WHERE org_id = $1 AND id = $2").bind(org).bind(id)).await? == 1)
    }

    async fn routing_triggers(&self, org: &OrgId) -> Result<Vec<Trigger>> {
        let rows = self
            .pool
            .fetch_all(
                q(format!(
                    "SELECT {COLUMNS} FROM triggers t JOIN integrations i ON i.org_id = t.org_id AND i.id = t.integration_id \
                     WHERE t.org_id = $1 AND t.active = $2 AND i.enabled = $2 AND i.direction = 'EGRESS' ORDER BY t.id"
                ))
                .bind(org)
                .bind(true),
            )
            .await?;
        rows.iter().map(trigger_from).collect()
    }

    async fn device_places(&self, org: &OrgId, device: &DeviceId) -> Result<Vec<PlaceId>> {
        let rows = self
            .pool
            .fetch_all(
                q("WITH RECURSIVE up (id, parent_id, depth) AS ( \
                     SELECT p.id, p.parent_id, 0 FROM places p JOIN devices d ON d.org_id = p.org_id AND d.place_id = p.id \
                     WHERE d.org_id = $1 AND d.id = $2 \
                     UNION ALL SELECT p.id, p.parent_id, up.depth + 1 FROM places p JOIN up ON p.id = up.parent_id WHERE p.org_id = $1) \
                   SELECT id FROM up ORDER BY depth")
                .bind(org)
                .bind(device),
            )
            .await?;
        rows.iter().map(|r| Ok(PlaceId::from_stored(r.get("id")?))).collect()
    }
}
