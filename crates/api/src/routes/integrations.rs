//! Integrations: create (validated against the type's property specs),
//! list with filters, read, update (partial; secrets kept unless cleared
//! with null), delete (with mappings).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_connectors::{ConnectorType, DirectionSupport};
use switchyard_core::spec::{self, Resolved};
use switchyard_core::{
    now_ms, validate_metadata, validate_name, Direction, Integration, IntegrationId, Metadata, Org, ResourcePath,
    ValidationErrors,
};
use switchyard_store::IntegrationFilter;
use utoipa::{IntoParams, ToSchema};

use super::resources::check_resources;
use super::{deleted, page_request, path_id, List};
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
}

/// The view of an integration, with its live status.
pub(crate) fn view(state: &AppState, integration: Integration) -> IntegrationView {
    let status = (integration.direction == Direction::Egress).then(|| {
        let c = state.engine.circuit(&integration.id);
        let circuit =
            serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        DeliveryStatusView { circuit, since: c.since, consecutive_failures: c.consecutive_failures }
    });
    IntegrationView { status, ..IntegrationView::from(integration) }
}

impl From<Integration> for IntegrationView {
    fn from(i: Integration) -> Self {
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
            actions: switchyard_engine::actions::available(i.direction).to_vec(),
            status: None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntegration {
    pub name: String,
    /// A type key from the catalog.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Required only for types that support both directions.
    pub direction: Option<Direction>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Values for the type's properties, secret ones included.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub metadata: Metadata,
    /// Places and devices this integration is tied to.
    #[serde(default)]
    pub resource_paths: Vec<String>,
}

fn enabled_by_default() -> bool {
    true
}

/// A partial update: omitted fields are kept. In `properties`, a key
/// replaces its value, `null` clears it, and omitted keys (secrets too) are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateIntegration {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
    pub metadata: Option<Metadata>,
    pub resource_paths: Option<Vec<String>>,
    /// Accepted only unchanged: the type is fixed at create.
    #[serde(rename = "type")]
    pub type_key: Option<String>,
    /// Accepted only unchanged: the direction is fixed at create.
    pub direction: Option<Direction>,
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

/// Which direction a new integration takes: the one the request names, or
/// else the only one its type supports, or the only one available.
fn pick_direction<'t>(
    t: &'t ConnectorType,
    requested: Option<Direction>,
    errors: &mut ValidationErrors,
) -> Option<&'t DirectionSupport> {
    let support = match (requested, t.directions.as_slice()) {
        (Some(d), _) => t.direction(d).or_else(|| {
            let supported: Vec<&str> = t.directions.iter().map(|s| s.direction().as_str()).collect();
            errors.push("direction", format!("{} supports only {}", t.key, supported.join(" and ")));
            None
        })?,
        (None, [only]) => only,
        (None, both) if both.iter().filter(|d| d.available()).count() == 1 => {
            both.iter().find(|d| d.available()).expect("one is available")
        }
        (None, _) => {
            errors.push("direction", format!("is required: {} supports both INGRESS and EGRESS", t.key));
            return None;
        }
    };
    if !support.available() {
        errors.push("type", format!("{} ({}) is not available yet (coming soon)", t.key, support.direction().as_str()));
        return None;
    }
    Some(support)
}

fn find_type(org: &Org, key: &str, errors: &mut ValidationErrors) -> Option<&'static ConnectorType> {
    let found = switchyard_connectors::find_for(org, key);
    if found.is_none() {
        errors.push("type", format!("unknown integration type `{key}`; see GET /v2/integrations/catalog"));
    }
    found
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
    let mut errors = ValidationErrors::default();
    validate_name("name", &body.name, &mut errors);
    validate_metadata("metadata", &body.metadata, &mut errors);
    let support = find_type(&caller.org, &body.type_key, &mut errors)
        .and_then(|t| Some((t, pick_direction(t, body.direction, &mut errors)?)));
    let mut resolved = match support {
        Some((_, d)) => {
            match spec::validate_create(&d.properties, &body.properties).and_then(|r| (d.check)(&r).map(|()| r)) {
                Ok(r) => r,
                Err(e) => {
                    errors.0.extend(e.0);
                    Resolved::default()
                }
            }
        }
        None => Resolved::default(),
    };
    let paths = ResourcePath::parse_list("resourcePaths", &body.resource_paths, "", &mut errors);
    errors.into_result()?;
    let (t, d) = support.expect("validated above");
    check_resources(&state, &caller.org.id, &paths, &resolved.resources).await?;
    let generated = (d.prepare)(&mut resolved);

    let now = now_ms();
    let integration = Integration {
        id: IntegrationId::new(),
        org_id: caller.org.id.clone(),
        name: body.name.trim().to_owned(),
        type_key: t.key.to_owned(),
        direction: d.direction(),
        enabled: body.enabled,
        properties: resolved.properties,
        secrets: resolved.secrets,
        metadata: body.metadata,
        resource_paths: paths.into_iter().map(|(_, p)| p).collect(),
        created_at: now,
        updated_at: now,
    };
    state.store.create_integration(&integration).await?;
    state.engine.routes_changed(&caller.org.id);
    tracing::info!(integration = %integration.id, r#type = t.key, "integration created");
    let mut view = view(&state, integration);
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
    Ok(Json(List::from_page(found, |i| view(&state, i))))
}

pub(crate) async fn load(state: &AppState, org: &Org, raw_id: &str) -> ApiResult<Integration> {
    let id: IntegrationId = path_id(raw_id)?;
    state.store.get_integration(&org.id, &id).await?.ok_or_else(|| ApiError::not_found("integration", &id))
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
    Ok(Json(view(&state, load(&state, &caller.org, &id).await?)))
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
    let mut current = load(&state, &caller.org, &id).await?;
    let mut errors = ValidationErrors::default();
    if body.type_key.as_ref().is_some_and(|t| *t != current.type_key) {
        errors.push("type", "cannot be changed; create a new integration instead");
    }
    if body.direction.is_some_and(|d| d != current.direction) {
        errors.push("direction", "cannot be changed; create a new integration instead");
    }
    if let Some(name) = &body.name {
        validate_name("name", name, &mut errors);
    }
    if let Some(metadata) = &body.metadata {
        validate_metadata("metadata", metadata, &mut errors);
    }
    let support = switchyard_connectors::find(&current.type_key).and_then(|t| t.direction(current.direction));
    let specs = support.map(|d| d.properties.as_slice()).unwrap_or_default();
    let before =
        Resolved { properties: current.properties.clone(), secrets: current.secrets.clone(), resources: vec![] };
    let patch = body.properties.clone().unwrap_or_default();
    let checked = spec::validate_update(specs, before.clone(), &patch)
        .and_then(|r| support.map_or(Ok(()), |d| (d.check)(&r)).map(|()| r));
    let resolved = match checked {
        Ok(mut r) => {
            if let Some(d) = support {
                (d.on_update)(&before, &mut r, now_ms());
            }
            r
        }
        Err(e) => {
            errors.0.extend(e.0);
            Resolved::default()
        }
    };
    let paths =
        body.resource_paths.as_deref().map(|raw| ResourcePath::parse_list("resourcePaths", raw, "", &mut errors));
    errors.into_result()?;
    let changed_refs: Vec<_> = if body.properties.is_some() { resolved.resources.clone() } else { vec![] };
    check_resources(&state, &caller.org.id, paths.as_deref().unwrap_or_default(), &changed_refs).await?;

    if let Some(name) = body.name {
        current.name = name.trim().to_owned();
    }
    if let Some(enabled) = body.enabled {
        current.enabled = enabled;
    }
    if let Some(metadata) = body.metadata {
        current.metadata = metadata;
    }
    if let Some(paths) = paths {
        current.resource_paths = paths.into_iter().map(|(_, p)| p).collect();
    }
    if body.properties.is_some() {
        current.properties = resolved.properties;
        current.secrets = resolved.secrets;
    }
    current.updated_at = now_ms();
    if !state.store.update_integration(&current).await? {
        return Err(ApiError::not_found("integration", &current.id));
    }
    state.engine.integration_changed(&caller.org.id, &current.id);
    Ok(Json(view(&state, current)))
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
    let found = state.store.delete_integration(&caller.org.id, &id).await?;
    state.engine.routes_changed(&caller.org.id);
    if found {
        tracing::info!(integration = %id, "integration deleted");
    }
    deleted(found, "integration", &id)
}
