//! Actions: `POST …/actions/{action}` answers 202 with the action; its
//! status, progress and result are read at `GET /v2/actions/{actionId}`,
//! every action at `GET /v2/actions`, and one that has not finished is
//! stopped by `POST /v2/actions/{actionId}/cancel`.
use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde::Serialize;
use serde_json::{Map, Value};
use switchyard_core::{Action, ActionId};
use switchyard_core::{ActionStatus, IntegrationId};
use switchyard_engine::actions::ActionError;
use switchyard_store::ActionFilter;
use utoipa::IntoParams;
use utoipa::ToSchema;

use super::{page_request, path_id, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionView {
    #[serde(flatten)]
    pub action: Action,
    /// The deliveries this action created, by state (backfill, test-send).
    pub deliveries: BTreeMap<String, u64>,
}

async fn view(state: &AppState, org: &switchyard_core::OrgId, action: Action) -> ApiResult<ActionView> {
    let counts = state.store.action_deliveries(org, &action.id).await?;
    Ok(ActionView { deliveries: counts.into_iter().map(|(s, n)| (s.as_str().to_owned(), n)).collect(), action })
}

/// Runs an action: `test-send` (optional `deviceId`, `kind`, `property`,
/// `payload`) or `backfill` (`from`, `to` in ms). The body is optional JSON.
#[utoipa::path(post, operation_id = "runAction", path = "/v2/integrations/{integrationId}/actions/{action}", tag = "actions",
    params(("integrationId" = String, Path, description = "`int_` id"), ("action" = String, Path, description = "`test-send` or `backfill`")),
    request_body(content = Object, description = "The action's parameters", content_type = "application/json"),
    responses((status = 202, body = ActionView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 415, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path((integration, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ActionView>)> {
    let integration = super::integrations::load(&state, &caller.org, &integration).await?;
    let params: Map<String, Value> = if body.is_empty() {
        Map::new()
    } else {
        let json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        crate::extract::parse_json(&body)?
    };
    let started = state.engine.start_action(&integration, &action, params).await.map_err(|e| match e {
        ActionError::Unknown(kind) => ApiError::NotFound(format!(
            "no action `{kind}` for this integration; it offers: {}",
            switchyard_engine::actions::available(&integration).join(", ")
        )),
        ActionError::Invalid(errors) => ApiError::Validation(errors),
        ActionError::Conflict(why) => ApiError::Conflict(why),
        ActionError::Store(e) => e.into(),
    })?;
    Ok((StatusCode::ACCEPTED, Json(view(&state, &caller.org.id, started).await?)))
}

#[utoipa::path(get, operation_id = "getAction", path = "/v2/actions/{actionId}", tag = "actions",
    params(("actionId" = String, Path, description = "`act_` id")),
    responses((status = 200, body = ActionView), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<ActionView>> {
    let id: ActionId = path_id(&id)?;
    let action =
        state.store.get_action(&caller.org.id, &id).await?.ok_or_else(|| ApiError::not_found("action", &id))?;
    Ok(Json(view(&state, &caller.org.id, action).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ActionQuery {
    /// Only this integration's actions (`int_` id).
    pub integration_id: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: Option<ActionStatus>,
    /// `test-send`, `backfill` or `replay-unmapped`.
    pub kind: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

/// The organization's actions, newest first.
#[utoipa::path(get, operation_id = "listActions", path = "/v2/actions", tag = "actions", params(ActionQuery),
    responses((status = 200, body = List<Action>), (status = 401, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    ApiQuery(query): ApiQuery<ActionQuery>,
) -> ApiResult<Json<List<Action>>> {
    let page = page_request(query.limit, query.cursor)?;
    let integration = query
        .integration_id
        .map(|raw| IntegrationId::parse(&raw).map_err(|e| ApiError::invalid("integrationId", e.to_string())))
        .transpose()?;
    let filter = ActionFilter { integration, kind: query.kind, statuses: query.status.into_iter().collect() };
    let found = state.store.list_actions(&caller.org.id, &filter, &page).await?;
    Ok(Json(List::from_page(found, |a| a)))
}

/// Cancels an action that is queued or running: it stops after the step it
/// is at (a backfill's page), and what it did so far stays done. 409 when
/// it has finished.
#[utoipa::path(post, operation_id = "cancelAction", path = "/v2/actions/{actionId}/cancel", tag = "actions",
    params(("actionId" = String, Path, description = "`act_` id")),
    responses((status = 200, body = ActionView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 409, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
) -> ApiResult<Json<ActionView>> {
    let id: ActionId = path_id(&id)?;
    let now = switchyard_core::now_ms();
    let action =
        state.store.cancel_action(&caller.org.id, &id, now).await?.ok_or_else(|| ApiError::not_found("action", &id))?;
    if action.status != ActionStatus::Cancelled {
        return Err(ApiError::Conflict(format!(
            "the action has finished ({}): there is nothing to cancel",
            action.status.as_str()
        )));
    }
    Ok(Json(view(&state, &caller.org.id, action).await?))
}
