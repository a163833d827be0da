use async_trait::async_trait;
use switchyard_core::{ApiKey, ApiKeyId, Org, OrgId, Scope};

use crate::db::{q, Row};
use crate::{OrgStore, Result, SqlStore, StoreError};

const ORG_COLUMNS: &str = "o.id AS org_id, o.name AS org_name, o.custom_integrations, o.created_at AS org_created_at";
const KEY_COLUMNS: &str = "k.id, k.org_id, k.name, k.prefix, k.scope, k.created_at, k.revoked_at";

fn org_from(row: &Row) -> Result<Org> {
    Ok(Org {
        id: OrgId::from_stored(row.get("org_id")?),
        name: row.get("org_name")?,
        custom_integrations: row.get("custom_integrations")?,
        created_at: row.get("org_created_at")?,
    })
}

fn key_from(row: &Row) -> Result<ApiKey> {
    let scope: String = row.get("scope")?;
    Ok(ApiKey {
        id: ApiKeyId::from_stored(row.get("id")?),
        org_id: OrgId::from_stored(row.get("org_id")?),
        name: row.get("name")?,
        prefix: row.get("prefix")?,
        scope: Scope::parse(&scope).ok_or_else(|| StoreError::Corrupt(format!("api_keys.scope `{scope}`")))?,
        created_at: row.get("created_at")?,
        revoked_at: row.get("revoked_at")?,
    })
}

#[async_trait]
impl OrgStore for SqlStore {
    async fn create_org(&self, org: &Org) -> Result<()> {
        self.pool
            .execute(
                q("INSERT INTO orgs (id, name, custom_integrations, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&org.id)
                    .bind(org.name.as_str())
                    .bind(org.custom_integrations)
                    .bind(org.created_at),
            )
            .await
            .map(drop)
    }

    async fn list_orgs(&self) -> Result<Vec<Org>> {
        let rows = self.pool.fetch_all(q(format!("SELECT {ORG_COLUMNS} FROM orgs o ORDER BY o.id"))).await?;
        rows.iter().map(org_from).collect()
    }

    async fn get_org(&self, id: &OrgId) -> Result<Option<Org>> {
        let row =
            self.pool.fetch_optional(q(format!("SELECT {ORG_COLUMNS} FROM orgs o WHERE o.id = $1")).bind(id)).await?;
        row.as_ref().map(org_from).transpose()
    }

    async fn set_custom_integrations(&self, id: &OrgId, enabled: bool) -> Result<bool> {
        let n = self
            .pool
            .execute(q("UPDATE orgs SET custom_integrations = $2 WHERE id = $1").bind(id).bind(enabled))
            .await?;
        Ok(n == 1)
    }

    async fn create_key(&self, key: &ApiKey, hash: &str) -> Result<()> {
        self.pool
            .execute(
                q("INSERT INTO api_keys (id, org_id, name, prefix, key_hash, scope, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(&key.id)
                    .bind(&key.org_id)
                    .bind(key.name.as_str())
                    .bind(key.prefix.as_str())
                    .bind(hash)
                    .bind(key.scope.as_str())
                    .bind(key.created_at),
            )
            .await
            .map(drop)
    }

    async fn list_keys(&self, org: &OrgId) -> Result<Vec<ApiKey>> {
        let rows = self
            .pool
            .fetch_all(q(format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.org_id = $1 ORDER BY k.id")).bind(org))
            .await?;
        rows.iter().map(key_from).collect()
    }

    async fn revoke_key(&self, org: &OrgId, id: &ApiKeyId) -> Result<bool> {
        let n = self
            .pool
            .execute(
                q("UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL")
                    .bind(org)
                    .bind(id)
                    .bind(switchyard_core::now_ms()),
            )
            .await?;
        Ok(n == 1)
    }

    async fn get_globals(&self, org: &OrgId) -> Result<switchyard_core::Globals> {
        let row =
            self.pool.fetch_optional(q("SELECT globals, secret_globals FROM orgs WHERE id = $1").bind(org)).await?;
        let Some(r) = row else { return Ok(Default::default()) };
        let secrets = match r.get::<Option<String>>("secret_globals")? {
            Some(sealed) => self.open_secrets("orgs.secret_globals", &sealed)?,
            None => Default::default(),
        };
        Ok(switchyard_core::Globals {
            values: crate::from_json("orgs.globals", &r.get::<String>("globals")?)?,
            secrets,
        })
    }

    async fn set_globals(&self, org: &OrgId, globals: &switchyard_core::Globals) -> Result<()> {
        let update = q("UPDATE orgs SET globals = $2, secret_globals = $3, globals_updated_at = $4 WHERE id = $1")
            .bind(org)
            .bind(crate::json_text(&globals.values))
            .bind(self.seal(&globals.secrets))
            .bind(switchyard_core::now_ms());
        self.pool.execute(update).await.map(drop)
    }

    async fn globals_versions(&self) -> Result<Vec<(OrgId, i64)>> {
        let rows = self.pool.fetch_all(q("SELECT id, globals_updated_at FROM orgs")).await?;
        rows.iter().map(|r| Ok((OrgId::from_stored(r.get("id")?), r.get("globals_updated_at")?))).collect()
    }

    async fn authenticate(&self, key_hash: &str) -> Result<Option<(ApiKey, Org)>> {
        let row = self
            .pool
            .fetch_optional(
                q(format!(
                    "SELECT {KEY_COLUMNS}, {ORG_COLUMNS} FROM api_keys k JOIN orgs o ON o.id = k.org_id \
                     WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
                ))
                .bind(key_hash),
            )
            .await?;
        row.map(|r| Ok((key_from(&r)?, org_from(&r)?))).transpose()
    }
}
