//! The organization's globals: values templated properties can use
//! (`{{ globals.site }}` in a webhook's body template).
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_core::{validate_metadata, Metadata, ValidationErrors};
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

/// Replaces the globals. Integrations pick up the new values within seconds.
#[utoipa::path(put, operation_id = "putGlobals", path = "/v2/globals", tag = "globals", request_body = Globals,
    responses((status = 200, body = Globals), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(body): ApiJson<Globals>,
) -> ApiResult<Json<Globals>> {
    let mut errors = ValidationErrors::default();
    validate_metadata("globals", &body.globals, &mut errors);
    errors.into_result()?;
    state.store.set_globals(&caller.org.id, &body.globals).await?;
    state.engine.globals_changed(&caller.org.id);
    Ok(Json(body))
}
