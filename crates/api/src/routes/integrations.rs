//! Integrations: create (validated against the type's property specs),
//! list with filters, read, update (partial; secrets kept unless cleared
//! with null), delete (with mappings).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_core::input::{CreateIntegration, UpdateIntegration};
use switchyard_core::{Direction, Integration, IntegrationId, Metadata, Org};
use switchyard_engine::ingress::{ConnectionState, ConnectionView, StateChange};
use switchyard_store::IntegrationFilter;
use utoipa::{IntoParams, ToSchema};

use super::{page_request, path_id, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

/// The delivery state of an egress integration, on the node that answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatusView {
    /// `closed` (sending), `open` (paused after repeated failures) or `half_open` (probing).
    pub circuit: String,
    /// Since when (ms since the epoch); 0 when it never changed.
    pub since: i64,
    pub consecutive_failures: u32,
}

/// An integration as served: secret values are never included; `secretsSet`
/// names the secret properties that hold a value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationView {
    pub id: IntegrationId,
    pub name: String,
    #[serde(rename = "type")]
    pub type_key: String,
    pub direction: Direction,
    pub enabled: bool,
    /// Non-secret property values.
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    pub secrets_set: Vec<String>,
    pub metadata: Metadata,
    pub resource_paths: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Secrets Switchyard generated (a webhook's signing secret): in the
    /// create response only, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_secrets: Option<std::collections::BTreeMap<String, String>>,
    /// The actions this integration offers (`POST …/actions/{action}`).
    pub actions: Vec<&'static str>,
    /// For EGRESS integrations: the circuit breaker's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DeliveryStatusView>,
    /// For INGRESS integrations: the connection to the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionView>,
}

/// An ingress integration's connection as this node has it: before its
/// task reported, `connecting` (or `disabled`) since its last change.
async fn connection(state: &AppState, integration: &Integration) -> (ConnectionView, Vec<StateChange>) {
    state.engine.connection(&integration.id).await.unwrap_or_else(|| {
        let state = if integration.enabled { ConnectionState::Connecting } else { ConnectionState::Disabled };
        let view = ConnectionView {
            state,
            since: integration.updated_at,
            last_message_at: None,
            last_error: None,
            throttled: false,
            counters: Default::default(),
            node: None,
            poll: None,
        };
        (view, vec![StateChange { state, at: integration.updated_at, error: None }])
    })
}

/// The view of an integration, with its live status.
pub(crate) async fn view(state: &AppState, integration: Integration) -> IntegrationView {
    let status = (integration.direction == Direction::Egress).then(|| {
        let c = state.engine.circuit(&integration.id);
        let circuit =
            serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        DeliveryStatusView { circuit, since: c.since, consecutive_failures: c.consecutive_failures }
    });
    let connection = match integration.direction {
        Direction::Ingress => Some(connection(state, &integration).await.0),
        Direction::Egress => None,
    };
    IntegrationView { status, connection, ..IntegrationView::from(integration) }
}

impl From<Integration> for IntegrationView {
    fn from(i: Integration) -> Self {
        let actions = switchyard_engine::actions::available(&i).to_vec();
        Self {
            id: i.id,
            name: i.name,
            type_key: i.type_key,
            direction: i.direction,
            enabled: i.enabled,
            properties: i.properties,
            secrets_set: i.secrets.into_keys().collect(),
            metadata: i.metadata,
            resource_paths: i.resource_paths.iter().map(ToString::to_string).collect(),
            created_at: i.created_at,
            updated_at: i.updated_at,
            generated_secrets: None,
            actions,
            status: None,
            connection: None,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub direction: Option<Direction>,
    #[serde(rename = "type")]
    pub type_key: Option<String>,
    pub enabled: Option<bool>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

/// Creates an integration (wizard step two). Secret properties are stored
/// encrypted and never returned.
#[utoipa::path(post, operation_id = "createIntegration", path = "/v2/integrations", tag = "integrations", request_body = CreateIntegration,
    responses((status = 201, body = IntegrationView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 413, body = crate::Problem), (status = 415, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(body): ApiJson<CreateIntegration>,
) -> ApiResult<(StatusCode, Json<IntegrationView>)> {
    let (integration, generated) = state.engine.config().create_integration(&caller.org, body).await?;
    let mut view = view(&state, integration).await;
    if !generated.is_empty() {
        view.generated_secrets = Some(generated.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// Lists the organization's integrations, newest last.
#[utoipa::path(get, operation_id = "listIntegrations", path = "/v2/integrations", tag = "integrations", params(ListQuery),
    responses((status = 200, body = List<IntegrationView>), (status = 401, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<IntegrationView>>> {
    let page = page_request(query.limit, query.cursor)?;
    let filter =
        IntegrationFilter { direction: query.direction, type_key: query.type_key, enabled: query.enabled, q: query.q };
    let found = state.store.list_integrations(&caller.org.id, &filter, &page).await?;
    let mut data = Vec::with_capacity(found.items.len());
    for integration in found.items {
        data.push(view(&state, integration).await);
    }
    Ok(Json(List { data, next_cursor: found.next_cursor }))
}

pub(crate) async fn load(state: &AppState, org: &Org, raw_id: &str) -> ApiResult<Integration> {
    let id: IntegrationId = path_id(raw_id)?;
    state.store.get_integration(&org.id, &id).await?.ok_or_else(|| ApiError::not_found("integration", &id))
}

/// An INGRESS integration, or 422 saying what only those have.
pub(crate) async fn load_ingress(state: &AppState, org: &Org, raw_id: &str, what: &str) -> ApiResult<Integration> {
    let integration = load(state, org, raw_id).await?;
    if integration.direction != Direction::Ingress {
        return Err(ApiError::invalid("integrationId", format!("only INGRESS integrations {what}")));
    }
    Ok(integration)
}

/// One integration.
#[utoipa::path(get, operation_id = "getIntegration", path = "/v2/integrations/{integrationId}", tag = "integrations",
    params(("integrationId" = String, Path, description = "`int_` id")),
    responses((status = 200, body = IntegrationView), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationView>> {
    Ok(Json(view(&state, load(&state, &caller.org, &id).await?).await))
}

/// Updates name, enabled, properties, metadata and resource paths.
#[utoipa::path(put, operation_id = "updateIntegration", path = "/v2/integrations/{integrationId}", tag = "integrations", request_body = UpdateIntegration,
    params(("integrationId" = String, Path, description = "`int_` id")),
    responses((status = 200, body = IntegrationView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 413, body = crate::Problem), (status = 415, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateIntegration>,
) -> ApiResult<Json<IntegrationView>> {
    let id: IntegrationId = path_id(&id)?;
    Ok(Json(view(&state, state.engine.config().update_integration(&caller.org, &id, body).await?).await))
}

/// Deletes an integration and its resource mappings.
#[utoipa::path(delete, operation_id = "deleteIntegration", path = "/v2/integrations/{integrationId}", tag = "integrations",
    params(("integrationId" = String, Path, description = "`int_` id")),
    responses((status = 204), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: IntegrationId = path_id(&id)?;
    state.engine.config().delete_integration(&caller.org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusHistory {
    /// The last 50 state changes of the connection, newest first.
    pub data: Vec<StateChange>,
}

/// An ingress integration's last 50 connection state changes, newest first.
#[utoipa::path(get, operation_id = "getStatusHistory", path = "/v2/integrations/{integrationId}/status-history", tag = "integrations",
    params(("integrationId" = String, Path, description = "`int_` id")),
    responses((status = 200, body = StatusHistory), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn status_history(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusHistory>> {
    let integration = load_ingress(&state, &caller.org, &id, "hold a connection").await?;
    Ok(Json(StatusHistory { data: connection(&state, &integration).await.1 }))
}
