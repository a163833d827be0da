//! Triggers: what an egress integration receives (kinds × objects × scope).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_core::{
    now_ms, Direction, Integration, IntegrationId, RecordKind, ResourcePath, Trigger, TriggerId, ValidationErrors,
};
use utoipa::ToSchema;

use super::resources::check_resources;
use super::{deleted, page_request, path_id, List, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

const OBJECTS_MAX: usize = 256;
const PATTERN_MAX: usize = 256;

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTrigger {
    #[serde(default)]
    pub name: String,
    /// `value`, `event`, `alarm`: at least one.
    pub kinds: Vec<RecordKind>,
    #[serde(default)]
    pub objects: Vec<String>,
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Omitted fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTrigger {
    pub name: Option<String>,
    pub kinds: Option<Vec<RecordKind>>,
    pub objects: Option<Vec<String>>,
    pub scope: Option<Vec<String>>,
    pub active: Option<bool>,
}

async fn egress(state: &AppState, caller_org: &switchyard_core::Org, raw: &str) -> ApiResult<Integration> {
    let integration = super::integrations::load(state, caller_org, raw).await?;
    if integration.direction != Direction::Egress {
        return Err(ApiError::invalid("integrationId", "triggers belong to EGRESS integrations"));
    }
    Ok(integration)
}

/// What to do instead of naming the root in a scope.
const SCOPE_HINT: &str = " (leave scope empty for everywhere)";

fn check_kinds(kinds: &[RecordKind], errors: &mut ValidationErrors) -> Vec<RecordKind> {
    if kinds.is_empty() {
        errors.push("kinds", "must name at least one of value, event, alarm");
    }
    let mut out = kinds.to_vec();
    out.sort();
    out.dedup();
    out
}

fn check_objects(objects: &[String], errors: &mut ValidationErrors) -> Vec<String> {
    if objects.len() > OBJECTS_MAX {
        errors.push("objects", format!("must have at most {OBJECTS_MAX} patterns"));
    }
    for (i, o) in objects.iter().enumerate() {
        if o.trim().is_empty() || o.len() > PATTERN_MAX {
            errors.push(format!("objects[{i}]"), format!("must be 1 to {PATTERN_MAX} characters"));
        }
    }
    objects.iter().map(|o| o.trim().to_owned()).collect()
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
    let integration = egress(&state, &caller.org, &id).await?;
    let mut errors = ValidationErrors::default();
    if body.name.len() > switchyard_core::NAME_MAX {
        errors.push("name", format!("must be at most {} characters", switchyard_core::NAME_MAX));
    }
    let kinds = check_kinds(&body.kinds, &mut errors);
    let objects = check_objects(&body.objects, &mut errors);
    let scope = ResourcePath::parse_list("scope", &body.scope, SCOPE_HINT, &mut errors);
    errors.into_result()?;
    check_resources(&state, &caller.org.id, &scope, &[]).await?;
    let now = now_ms();
    let trigger = Trigger {
        id: TriggerId::new(),
        integration_id: integration.id,
        name: body.name.trim().to_owned(),
        kinds,
        objects,
        scope: scope.into_iter().map(|(_, p)| p).collect(),
        active: body.active,
        created_at: now,
        updated_at: now,
    };
    state.store.create_trigger(&caller.org.id, &trigger).await?;
    state.engine.routes_changed(&caller.org.id);
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
    let mut t = load(&state, &caller.org, &integration, &trigger).await?;
    let mut errors = ValidationErrors::default();
    let kinds = body.kinds.as_deref().map(|k| check_kinds(k, &mut errors));
    let objects = body.objects.as_deref().map(|o| check_objects(o, &mut errors));
    let scope = body.scope.as_deref().map(|s| ResourcePath::parse_list("scope", s, SCOPE_HINT, &mut errors));
    if body.name.as_ref().is_some_and(|n| n.len() > switchyard_core::NAME_MAX) {
        errors.push("name", format!("must be at most {} characters", switchyard_core::NAME_MAX));
    }
    errors.into_result()?;
    if let Some(scope) = &scope {
        check_resources(&state, &caller.org.id, scope, &[]).await?;
    }
    if let Some(name) = body.name {
        t.name = name.trim().to_owned();
    }
    if let Some(kinds) = kinds {
        t.kinds = kinds;
    }
    if let Some(objects) = objects {
        t.objects = objects;
    }
    if let Some(scope) = scope {
        t.scope = scope.into_iter().map(|(_, p)| p).collect();
    }
    if let Some(active) = body.active {
        t.active = active;
    }
    t.updated_at = now_ms();
    if !state.store.update_trigger(&caller.org.id, &t).await? {
        return Err(ApiError::not_found("trigger", &t.id));
    }
    state.engine.routes_changed(&caller.org.id);
    Ok(Json(t.into()))
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
    let t = load(&state, &caller.org, &integration, &trigger).await?;
    let found = state.store.delete_trigger(&caller.org.id, &t.id).await?;
    state.engine.routes_changed(&caller.org.id);
    deleted(found, "trigger", &t.id)
}
