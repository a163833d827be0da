//! The organization's globals: values templated properties can use
//! (`{{ globals.site }}` in a webhook's body template).
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_core::Metadata;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Globals {
    /// Names to string values; at most 64, keys up to 128 and values up to 1,024 characters.
    pub globals: Metadata,
}

#[utoipa::path(get, operation_id = "getGlobals", path = "/v2/globals", tag = "globals",
    responses((status = 200, body = Globals), (status = 401, body = crate::Problem)), security(("apiKey" = [])))]
pub async fn get(State(state): State<AppState>, caller: Caller<Read>) -> ApiResult<Json<Globals>> {
    Ok(Json(Globals { globals: state.store.get_globals(&caller.org.id).await? }))
}

/// Replaces the globals. Integrations render with the new values from their next send.
#[utoipa::path(put, operation_id = "putGlobals", path = "/v2/globals", tag = "globals", request_body = Globals,
    responses((status = 200, body = Globals), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(body): ApiJson<Globals>,
) -> ApiResult<Json<Globals>> {
    state.engine.config().set_globals(&caller.org.id, &body.globals).await?;
    Ok(Json(body))
}
