//! The organization's globals: values templated properties can use
//! (`{{ globals.site }}` in a webhook's body template, a broker's host), and
//! secret ones, write-only, that only secret properties may use (a password).
use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_core::Metadata;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Globals {
    /// Names to string values.
    pub globals: Metadata,
    /// The names of the secret globals (their values are never shown).
    pub secrets_set: Vec<String>,
}

impl From<switchyard_core::Globals> for Globals {
    fn from(g: switchyard_core::Globals) -> Self {
        Self { globals: g.values, secrets_set: g.secrets.into_keys().collect() }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGlobals {
    /// Names to string values, replacing all plain globals; at most 64, keys up to 128 and values up to 1,024 characters.
    pub globals: Metadata,
    /// Secret globals to set (a value) or remove (`null`); those not named are kept. Encrypted at rest, never shown;
    /// only secret properties (passwords, keys, tokens) may render them.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub secrets: BTreeMap<String, Option<String>>,
}

#[utoipa::path(get, operation_id = "getGlobals", path = "/v2/globals", tag = "globals",
    responses((status = 200, body = Globals), (status = 401, body = crate::Problem)), security(("apiKey" = [])))]
pub async fn get(State(state): State<AppState>, caller: Caller<Read>) -> ApiResult<Json<Globals>> {
    Ok(Json(state.store.get_globals(&caller.org.id).await?.into()))
}

/// Replaces the globals and changes secret ones. Integrations render with the
/// new values from their next send; ingress connections whose settings are
/// templates reconnect.
#[utoipa::path(put, operation_id = "putGlobals", path = "/v2/globals", tag = "globals", request_body = PutGlobals,
    responses((status = 200, body = Globals), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(body): ApiJson<PutGlobals>,
) -> ApiResult<Json<Globals>> {
    Ok(Json(state.engine.config().set_globals(&caller.org.id, &body.globals, &body.secrets).await?.into()))
}
