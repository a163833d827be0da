//! Triggers: what an egress integration receives (kinds × objects × scope).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use switchyard_core::input::{CreateTrigger, UpdateTrigger};
use switchyard_core::{IntegrationId, RecordKind, Trigger, TriggerId};
use utoipa::ToSchema;

use super::{page_request, path_id, List, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerView {
    pub id: TriggerId,
    pub integration_id: IntegrationId,
    pub name: String,
    pub kinds: Vec<RecordKind>,
    /// Object (property) names or `*` globs; every object when empty.
    pub objects: Vec<String>,
    /// Places (with their subtrees) and devices; everywhere when empty.
    pub scope: Vec<String>,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Trigger> for TriggerView {
    fn from(t: Trigger) -> Self {
        Self {
            id: t.id,
            integration_id: t.integration_id,
            name: t.name,
            kinds: t.kinds,
            objects: t.objects,
            scope: t.scope.iter().map(ToString::to_string).collect(),
            active: t.active,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[utoipa::path(post, operation_id = "createTrigger", path = "/v2/integrations/{integrationId}/triggers", tag = "triggers",
    request_body = CreateTrigger, params(("integrationId" = String, Path, description = "`int_` id")),
    responses((status = 201, body = TriggerView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateTrigger>,
) -> ApiResult<(StatusCode, Json<TriggerView>)> {
    let integration: IntegrationId = path_id(&id)?;
    let trigger = state.engine.config().create_trigger(&caller.org.id, &integration, body).await?;
    Ok((StatusCode::CREATED, Json(trigger.into())))
}

#[utoipa::path(get, operation_id = "listTriggers", path = "/v2/integrations/{integrationId}/triggers", tag = "triggers",
    params(("integrationId" = String, Path, description = "`int_` id"), PageQuery),
    responses((status = 200, body = List<TriggerView>), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<List<TriggerView>>> {
    let page = page_request(query.limit, query.cursor)?;
    let integration = super::integrations::load(&state, &caller.org, &id).await?;
    let found = state.store.list_triggers(&caller.org.id, &integration.id, &page).await?;
    Ok(Json(List::from_page(found, TriggerView::from)))
}

async fn load(state: &AppState, caller: &switchyard_core::Org, integration: &str, trigger: &str) -> ApiResult<Trigger> {
    let integration = super::integrations::load(state, caller, integration).await?;
    let id: TriggerId = path_id(trigger)?;
    match state.store.get_trigger(&caller.id, &id).await? {
        Some(t) if t.integration_id == integration.id => Ok(t),
        _ => Err(ApiError::not_found("trigger", &id)),
    }
}

#[utoipa::path(get, operation_id = "getTrigger", path = "/v2/integrations/{integrationId}/triggers/{triggerId}", tag = "triggers",
    params(("integrationId" = String, Path, description = "`int_` id"), ("triggerId" = String, Path, description = "`trg_` id")),
    responses((status = 200, body = TriggerView), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path((integration, trigger)): Path<(String, String)>,
) -> ApiResult<Json<TriggerView>> {
    Ok(Json(load(&state, &caller.org, &integration, &trigger).await?.into()))
}

#[utoipa::path(put, operation_id = "updateTrigger", path = "/v2/integrations/{integrationId}/triggers/{triggerId}", tag = "triggers",
    request_body = UpdateTrigger,
    params(("integrationId" = String, Path, description = "`int_` id"), ("triggerId" = String, Path, description = "`trg_` id")),
    responses((status = 200, body = TriggerView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path((integration, trigger)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateTrigger>,
) -> ApiResult<Json<TriggerView>> {
    let (integration, trigger): (IntegrationId, TriggerId) = (path_id(&integration)?, path_id(&trigger)?);
    Ok(Json(state.engine.config().update_trigger(&caller.org.id, &integration, &trigger, body).await?.into()))
}

#[utoipa::path(delete, operation_id = "deleteTrigger", path = "/v2/integrations/{integrationId}/triggers/{triggerId}", tag = "triggers",
    params(("integrationId" = String, Path, description = "`int_` id"), ("triggerId" = String, Path, description = "`trg_` id")),
    responses((status = 204), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path((integration, trigger)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (integration, trigger): (IntegrationId, TriggerId) = (path_id(&integration)?, path_id(&trigger)?);
    state.engine.config().delete_trigger(&caller.org.id, &integration, &trigger).await?;
    Ok(StatusCode::NO_CONTENT)
}
