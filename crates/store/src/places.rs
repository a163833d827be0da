use async_trait::async_trait;
use switchyard_core::{Device, DeviceId, OrgId, Place, PlaceId, ResourceEntry, ResourcePath, ResourceType};

use crate::db::{q, Conn, Row};
use crate::{from_json, json_text, page_clause, paged, Page, PageRequest, PlaceStore, Result, SqlStore, StoreError};

const PLACE_COLUMNS: &str = "id, name, parent_id, metadata, location, created_at, updated_at";
const DEVICE_COLUMNS: &str = "id, name, place_id, device_type, external_ids, metadata, created_at, updated_at";

fn place_from(row: &Row) -> Result<Place> {
    Ok(Place {
        id: PlaceId::from_stored(row.get("id")?),
        name: row.get("name")?,
        parent_id: row.get::<Option<String>>("parent_id")?.map(PlaceId::from_stored),
        metadata: from_json("places.metadata", &row.get::<String>("metadata")?)?,
        location: row.get::<Option<String>>("location")?.map(|l| from_json("places.location", &l)).transpose()?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn device_from(row: &Row) -> Result<Device> {
    Ok(Device {
        id: DeviceId::from_stored(row.get("id")?),
        name: row.get("name")?,
        place_id: PlaceId::from_stored(row.get("place_id")?),
        device_type: row.get("device_type")?,
        external_ids: from_json("devices.external_ids", &row.get::<String>("external_ids")?)?,
        metadata: from_json("devices.metadata", &row.get::<String>("metadata")?)?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn entry_from(row: &Row) -> Result<ResourceEntry> {
    let id: String = row.get("id")?;
    let place_id: Option<String> = row.get("place_id")?;
    let (resource_type, path) = match row.get::<String>("kind")?.as_str() {
        "device" => {
            let place = place_id.ok_or_else(|| StoreError::Corrupt("device without place".into()))?;
            (ResourceType::Device, ResourcePath::Device(PlaceId::from_stored(place), DeviceId::from_stored(id.clone())))
        }
        _ => (ResourceType::Place, ResourcePath::Place(PlaceId::from_stored(id.clone()))),
    };
    Ok(ResourceEntry { resource_type, id, name: row.get("name")?, path, device_type: row.get("device_type")? })
}

async fn count(conn: &mut Conn<'_>, sql: &'static str, org: &OrgId, id: &str) -> Result<i64> {
    let row = conn.fetch_optional(q(sql).bind(org).bind(id)).await?;
    row.map_or(Ok(0), |r| r.get("n"))
}

#[async_trait]
impl PlaceStore for SqlStore {
    async fn create_place(&self, org: &OrgId, place: &Place) -> Result<()> {
        self.pool
            .execute(
                q("INSERT INTO places (id, org_id, parent_id, name, metadata, location, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&place.id)
                .bind(org)
                .bind(place.parent_id.as_ref().map(|p| p.as_str()))
                .bind(place.name.as_str())
                .bind(json_text(&place.metadata))
                .bind(place.location.as_ref().map(json_text))
                .bind(place.created_at)
                .bind(place.updated_at),
            )
            .await
            .map(drop)
    }

    async fn get_place(&self, org: &OrgId, id: &PlaceId) -> Result<Option<Place>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!("SELECT {PLACE_COLUMNS} FROM places WHERE org_id = $1 AND id = $2")).bind(org).bind(id),
            )
            .await?;
        row.as_ref().map(place_from).transpose()
    }

    async fn list_places(
        &self,
        org: &OrgId,
        parent: Option<Option<&PlaceId>>,
        page: &PageRequest,
    ) -> Result<Page<Place>> {
        let mut query = q(format!("SELECT {PLACE_COLUMNS} FROM places WHERE org_id = $1")).bind(org);
        match parent {
            None => {}
            Some(None) => query.push_sql(" AND parent_id IS NULL"),
            Some(Some(p)) => {
                let p = query.arg(p);
                query.push_sql(&format!(" AND parent_id = {p}"));
            }
        }
        page_clause(&mut query, "id", page);
        let items = self.pool.fetch_all(query).await?.iter().map(place_from).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |p| p.id.to_string()))
    }

    async fn update_place(&self, org: &OrgId, place: &Place) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        if let Some(parent) = &place.parent_id {
            // Moving a place under itself or one of its descendants would make a cycle.
            let cycle = tx
                .conn()
                .fetch_optional(
                    q("WITH RECURSIVE up (id, parent_id) AS ( \
                         SELECT id, parent_id FROM places WHERE org_id = $1 AND id = $2 \
                         UNION ALL SELECT p.id, p.parent_id FROM places p JOIN up ON p.id = up.parent_id WHERE p.org_id = $1) \
                       SELECT id FROM up WHERE id = $3")
                    .bind(org)
                    .bind(parent)
                    .bind(&place.id),
                )
                .await?;
            if cycle.is_some() {
                return Err(StoreError::Invalid {
                    field: "parentId",
                    message: "a place cannot be moved under itself or one of its descendants".into(),
                });
            }
        }
        let n = tx
            .conn()
            .execute(
                q("UPDATE places SET name = $3, parent_id = $4, metadata = $5, updated_at = $6, location = $7 \
                   WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(&place.id)
                .bind(place.name.as_str())
                .bind(place.parent_id.as_ref().map(|p| p.as_str()))
                .bind(json_text(&place.metadata))
                .bind(place.updated_at)
                .bind(place.location.as_ref().map(json_text)),
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn delete_place(&self, org: &OrgId, id: &PlaceId) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let mut conn = tx.conn();
        let children =
            count(&mut conn, "SELECT COUNT(*) AS n FROM places WHERE org_id = $1 AND parent_id = $2", org, id.as_str())
                .await?;
        let devices =
            count(&mut conn, "SELECT COUNT(*) AS n FROM devices WHERE org_id = $1 AND place_id = $2", org, id.as_str())
                .await?;
        let mappings = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM resource_mappings WHERE org_id = $1 AND place_id = $2",
            org,
            id.as_str(),
        )
        .await?;
        if children + devices + mappings > 0 {
            return Err(StoreError::InUse(format!(
                "the place still has {children} child place(s), {devices} device(s) and {mappings} resource mapping(s); remove them first"
            )));
        }
        let n = conn.execute(q("DELETE FROM places WHERE org_id = $1 AND id = $2").bind(org).bind(id)).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn create_device(&self, org: &OrgId, device: &Device) -> Result<()> {
        self.pool
            .execute(
                q("INSERT INTO devices (id, org_id, place_id, name, device_type, external_ids, metadata, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&device.id)
                .bind(org)
                .bind(&device.place_id)
                .bind(device.name.as_str())
                .bind(device.device_type.as_str())
                .bind(json_text(&device.external_ids))
                .bind(json_text(&device.metadata))
                .bind(device.created_at)
                .bind(device.updated_at),
            )
            .await
            .map(drop)
    }

    async fn get_device(&self, org: &OrgId, id: &DeviceId) -> Result<Option<Device>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE org_id = $1 AND id = $2")).bind(org).bind(id),
            )
            .await?;
        row.as_ref().map(device_from).transpose()
    }

    async fn list_devices(&self, org: &OrgId, place: Option<&PlaceId>, page: &PageRequest) -> Result<Page<Device>> {
        let mut query = q(format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE org_id = $1")).bind(org);
        if let Some(place) = place {
            let p = query.arg(place);
            query.push_sql(&format!(" AND place_id = {p}"));
        }
        page_clause(&mut query, "id", page);
        let items = self.pool.fetch_all(query).await?.iter().map(device_from).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |d| d.id.to_string()))
    }

    async fn update_device(&self, org: &OrgId, device: &Device) -> Result<bool> {
        let n = self
            .pool
            .execute(
                q("UPDATE devices SET name = $3, place_id = $4, device_type = $5, external_ids = $6, metadata = $7, updated_at = $8 \
                   WHERE org_id = $1 AND id = $2")
                .bind(org)
                .bind(&device.id)
                .bind(device.name.as_str())
                .bind(&device.place_id)
                .bind(device.device_type.as_str())
                .bind(json_text(&device.external_ids))
                .bind(json_text(&device.metadata))
                .bind(device.updated_at),
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_device(&self, org: &OrgId, id: &DeviceId) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let mut conn = tx.conn();
        let mappings = count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM resource_mappings WHERE org_id = $1 AND device_id = $2",
            org,
            id.as_str(),
        )
        .await?;
        if mappings > 0 {
            return Err(StoreError::InUse(format!(
                "{mappings} resource mapping(s) point at the device; delete them first"
            )));
        }
        let n = conn.execute(q("DELETE FROM devices WHERE org_id = $1 AND id = $2").bind(org).bind(id)).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn resolve(&self, org: &OrgId, path: &ResourcePath) -> Result<Option<ResourceEntry>> {
        let query = match path {
            ResourcePath::Root => return Ok(None),
            ResourcePath::Place(p) => {
                q("SELECT 'place' AS kind, id, name, NULL AS device_type, NULL AS place_id FROM places WHERE org_id = $1 AND id = $2").bind(org).bind(p)
            }
            ResourcePath::Device(p, d) => q(
                "SELECT 'device' AS kind, id, name, device_type, place_id FROM devices WHERE org_id = $1 AND id = $2 AND place_id = $3",
            )
            .bind(org)
            .bind(d)
            .bind(p),
        };
        self.pool.fetch_optional(query).await?.as_ref().map(entry_from).transpose()
    }

    async fn children(&self, org: &OrgId, path: &ResourcePath, page: &PageRequest) -> Result<Page<ResourceEntry>> {
        let mut query = match path {
            ResourcePath::Root => q(
                "SELECT * FROM (SELECT 'place' AS kind, id, name, NULL AS device_type, NULL AS place_id \
                 FROM places WHERE org_id = $1 AND parent_id IS NULL) c WHERE 1 = 1",
            )
            .bind(org),
            ResourcePath::Place(p) => q(
                "SELECT * FROM ( \
                   SELECT 'place' AS kind, id, name, NULL AS device_type, NULL AS place_id FROM places WHERE org_id = $1 AND parent_id = $2 \
                   UNION ALL \
                   SELECT 'device' AS kind, id, name, device_type, place_id FROM devices WHERE org_id = $1 AND place_id = $2) c WHERE 1 = 1",
            )
            .bind(org)
            .bind(p),
            ResourcePath::Device(..) => return Ok(Page { items: vec![], next_cursor: None }),
        };
        page_clause(&mut query, "id", page);
        let items = self.pool.fetch_all(query).await?.iter().map(entry_from).collect::<Result<Vec<_>>>()?;
        Ok(paged(items, page, |e| e.id.clone()))
    }
}
