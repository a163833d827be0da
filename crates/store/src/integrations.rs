use std::collections::BTreeMap;

use async_trait::async_trait;
use switchyard_core::{
    DeviceId, Direction, Integration, IntegrationId, MappingId, OrgId, PlaceId, ResourceMapping, ResourcePath,
    ResourceType, Secret,
};

use crate::db::{q, Row};
use crate::{
    from_json, json_text, page_clause, paged, IntegrationFilter, IntegrationStore, Page, PageRequest, Result, SqlStore,
    StoreError,
};

const COLUMNS: &str =
    "id, org_id, name, type_key, direction, enabled, properties, secrets, metadata, resource_paths, created_at, updated_at";
const MAPPING_SELECT: &str = "SELECT m.id, m.integration_id, m.external_id, m.resource_type, m.place_id, m.device_id, \
     m.device_type, m.created_at, d.place_id AS device_place_id \
     FROM resource_mappings m LEFT JOIN devices d ON d.id = m.device_id AND d.org_id = m.org_id";

impl SqlStore {
    /// Secret values are kept as one encrypted JSON object per integration.
    pub(crate) fn seal(&self, secrets: &BTreeMap<String, Secret>) -> String {
        let plain: BTreeMap<&str, &str> = secrets.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        self.cipher.encrypt(json_text(&plain).as_bytes())
    }

    /// Opens what `seal` sealed; `column` names it in errors.
    pub(crate) fn open_secrets(&self, column: &str, sealed: &str) -> Result<BTreeMap<String, Secret>> {
        let opened = self.cipher.decrypt(sealed)?;
        let secrets: BTreeMap<String, String> =
            serde_json::from_slice(&opened).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))?;
        Ok(secrets.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
    }

    fn integration_from(&self, row: &Row) -> Result<Integration> {
        let direction: String = row.get("direction")?;
        let secrets = self.open_secrets("integrations.secrets", &row.get::<String>("secrets")?)?;
        let paths: Vec<String> = from_json("integrations.resource_paths", &row.get::<String>("resource_paths")?)?;
        Ok(Integration {
            id: IntegrationId::from_stored(row.get("id")?),
            org_id: OrgId::from_stored(row.get("org_id")?),
            name: row.get("name")?,
            type_key: row.get("type_key")?,
            direction: Direction::parse(&direction)
                .ok_or_else(|| StoreError::Corrupt(format!("direction `{direction}`")))?,
            enabled: row.get("enabled")?,
            properties: from_json("integrations.properties", &row.get::<String>("properties")?)?,
            secrets,
            metadata: from_json("integrations.metadata", &row.get::<String>("metadata")?)?,
            resource_paths: paths
                .iter()
                .map(|p| ResourcePath::parse(p).map_err(StoreError::Corrupt))
                .collect::<Result<_>>()?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

fn paths_text(paths: &[ResourcePath]) -> String {
    json_text(&paths.iter().map(ToString::to_string).collect::<Vec<_>>())
}

fn mapping_from(row: &Row) -> Result<ResourceMapping> {
    let place: Option<String> = row.get("place_id")?;
    let device: Option<String> = row.get("device_id")?;
    let device_place: Option<String> = row.get("device_place_id")?;
    let (resource_type, resource_path) = match (place, device, device_place) {
        (Some(p), None, _) => (ResourceType::Place, ResourcePath::Place(PlaceId::from_stored(p))),
        (None, Some(d), Some(p)) => {
            (ResourceType::Device, ResourcePath::Device(PlaceId::from_stored(p), DeviceId::from_stored(d)))
        }
        _ => return Err(StoreError::Corrupt("resource mapping without a resource".into())),
    };
    Ok(ResourceMapping {
        id: MappingId::from_stored(row.get("id")?),
        integration_id: IntegrationId::from_stored(row.get("integration_id")?),
        external_id: row.get("external_id")?,
        resource_type,
        resource_path,
        device_type: row.get("device_type")?,
        created_at: row.get("created_at")?,
    })
}

/// `%` and `_` in a search term are literal, not wildcards.
fn like_pattern(term: &str) -> String {
    let escaped = term.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

#[async_trait]
impl IntegrationStore for SqlStore {
    async fn create_integration(&self, i: &Integration) -> Result<()> {
        self.pool
            .execute(
                q(format!(
                    "INSERT INTO integrations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ))
                .bind(&i.id)
                .bind(&i.org_id)
                .bind(i.name.as_str())
                .bind(i.type_key.as_str())
                .bind(i.direction.as_str())
                .bind(i.enabled)
                .bind(json_text(&i.properties))
                .bind(self.seal(&i.secrets))
                .bind(json_text(&i.metadata))
                .bind(paths_text(&i.resource_paths))
                .bind(i.created_at)
                .bind(i.updated_at),
            )
            .await
            .map(drop)
    }

    async fn get_integration(&self, org: &OrgId, id: &IntegrationId) -> Result<Option<Integration>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!("SELECT {COLUMNS} FROM integrations WHERE org_id = $1 AND id = $2")).bind(org).bind(id),
            )
            .await?;
        row.as_ref().map(|r| self.integration_from(r)).transpose()
    }

    async fn list_integrations(
        &self,
        org: &OrgId,
        filter: &IntegrationFilter,
        page: &PageRequest,
    ) -> Result<Page<Integration>> {
        let mut query = q(format!("SELECT {COLUMNS} FROM integrations WHERE org_id = $1")).bind(org);
        if let Some(direction) = filter.direction {
            let p = query.arg(direction.as_str());
            query.push_sql(&format!(" AND direction = {p}"));
        }
        if let Some(type_key) = &filter.type_key {
            let p = query.arg(type_key.as_str());
            query.push_sql(&format!(" AND type_key = {p}"));
        }
        if let Some(enabled) = filter.enabled {
            let p = query.arg(enabled);
            query.push_sql(&format!(" AND enabled = {p}"));
        }
        if let Some(term) = filter.q.as_deref().filter(|t| !t.is_empty()) {
            let p = query.arg(like_pattern(term));
            query.push_sql(&format!(" AND LOWER(name) LIKE {p} ESCAPE '\\'"));
        }
        page_clause(&mut query, "id", page);
        let rows = self.pool.fetch_all(query).await?;
        let items = rows.iter().map(|r| self.integration_from(r)).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |i| i.id.to_string()))
    }

    async fn update_integration(&self, i: &Integration) -> Result<bool> {
        let n = self
            .pool
            .execute(
                q("UPDATE integrations SET name = $3, enabled = $4, properties = $5, secrets = $6, metadata = $7, \
                   resource_paths = $8, updated_at = $9 WHERE org_id = $1 AND id = $2")
                .bind(&i.org_id)
                .bind(&i.id)
                .bind(i.name.as_str())
                .bind(i.enabled)
                .bind(json_text(&i.properties))
                .bind(self.seal(&i.secrets))
                .bind(json_text(&i.metadata))
                .bind(paths_text(&i.resource_paths))
                .bind(i.updated_at),
            )
            .await?;
        Ok(n == 1)
    }

    async fn set_integration_enabled(&self, org: &OrgId, id: &IntegrationId, enabled: bool) -> Result<bool> {
        let n = self
            .pool
            .execute(
                q("UPDATE integrations SET enabled = $3, updated_at = $4 WHERE org_id = $1 AND id = $2")
                    .bind(org)
                    .bind(id)
                    .bind(enabled)
                    .bind(switchyard_core::now_ms()),
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_integration(&self, org: &OrgId, id: &IntegrationId) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        tx.conn()
            .execute(q("DELETE FROM resource_mappings WHERE org_id = $1 AND integration_id = $2").bind(org).bind(id))
            .await?;
        let n =
            tx.conn().execute(q("DELETE FROM integrations WHERE org_id = $1 AND id = $2").bind(org).bind(id)).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn create_mapping(&self, org: &OrgId, m: &ResourceMapping) -> Result<()> {
        let (place, device) = match &m.resource_path {
            ResourcePath::Place(p) => (Some(p.as_str()), None),
            ResourcePath::Device(_, d) => (None, Some(d.as_str())),
            ResourcePath::Root => {
                return Err(StoreError::Invalid {
                    field: "resourcePath",
                    message: "must name a Place or a device".into(),
                })
            }
        };
        let result = self
            .pool
            .execute(
                q("INSERT INTO resource_mappings (id, org_id, integration_id, external_id, resource_type, place_id, device_id, device_type, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&m.id)
                .bind(org)
                .bind(&m.integration_id)
                .bind(m.external_id.as_str())
                .bind(m.resource_type.as_str())
                .bind(place)
                .bind(device)
                .bind(m.device_type.as_deref())
                .bind(m.created_at),
            )
            .await;
        match result {
            Err(e) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("the integration already maps external id `{}`", m.external_id)))
            }
            Err(e) if e.is_foreign_key_violation() => Err(StoreError::Invalid {
                field: "resourcePath",
                message: "the integration or resource no longer exists".into(),
            }),
            other => other.map(drop),
        }
    }

    async fn get_mapping(&self, org: &OrgId, id: &MappingId) -> Result<Option<ResourceMapping>> {
        let row = self
            .pool
            .fetch_optional(q(format!("{MAPPING_SELECT} WHERE m.org_id = $1 AND m.id = $2")).bind(org).bind(id))
            .await?;
        row.as_ref().map(mapping_from).transpose()
    }

    async fn find_mapping(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        external_id: &str,
    ) -> Result<Option<ResourceMapping>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!("{MAPPING_SELECT} WHERE m.org_id = $1 AND m.integration_id = $2 AND m.external_id = $3"))
                    .bind(org)
                    .bind(integration)
                    .bind(external_id),
            )
            .await?;
        row.as_ref().map(mapping_from).transpose()
    }

    async fn list_mappings(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        page: &PageRequest,
    ) -> Result<Page<ResourceMapping>> {
        let mut query =
            q(format!("{MAPPING_SELECT} WHERE m.org_id = $1 AND m.integration_id = $2")).bind(org).bind(integration);
        page_clause(&mut query, "m.id", page);
        let items = self.pool.fetch_all(query).await?.iter().map(mapping_from).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |m| m.id.to_string()))
    }

    async fn delete_mapping(&self, org: &OrgId, id: &MappingId) -> Result<bool> {
        let n = self
            .pool
            .execute(q("DELETE FROM resource_mappings WHERE org_id = $1 AND id = $2").bind(org).bind(id))
            .await?;
        Ok(n == 1)
    }
}
