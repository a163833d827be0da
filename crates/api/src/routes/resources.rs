//! Resource paths: checking that they name something, and browsing what is
//! under one (the wizard's resource picker).
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_core::{ResourceEntry, ResourcePath};
use utoipa::{IntoParams, ToSchema};

use super::{page_request, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Caller, Read};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// `/places/{placeId}` or `/places/{placeId}/devices/{deviceId}`.
    pub path: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PathValidation {
    pub path: String,
    pub valid: bool,
    /// Why the path is not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The resource the path names, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceEntry>,
}

/// Validates a resource path: well-formed, and naming a Place or device of
/// the caller's organization. Answers 200 either way, with `valid` and `reason`.
#[utoipa::path(get, operation_id = "validatePath", path = "/v2/integrations/validate-path", tag = "resources", params(PathQuery),
    responses((status = 200, body = PathValidation), (status = 401, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn validate_path(
    State(state): State<AppState>,
    caller: Caller<Read>,
    ApiQuery(query): ApiQuery<PathQuery>,
) -> ApiResult<Json<PathValidation>> {
    let invalid = |reason: String| PathValidation {
        path: query.path.clone(),
        valid: false,
        reason: Some(reason),
        resource: None,
    };
    let parsed = match ResourcePath::parse(&query.path) {
        Ok(ResourcePath::Root) => return Ok(Json(invalid("`/` is the root, not a resource".into()))),
        Ok(p) => p,
        Err(e) => return Ok(Json(invalid(e))),
    };
    Ok(Json(match state.store.resolve(&caller.org.id, &parsed).await? {
        Some(resource) => {
            PathValidation { path: parsed.to_string(), valid: true, reason: None, resource: Some(resource) }
        }
        None => invalid("no Place or device exists at this path".into()),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResourcesQuery {
    /// `/` (root Places, the default) or a Place's path.
    pub path: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

/// The Places and devices directly under a path.
#[utoipa::path(get, operation_id = "listResources", path = "/v2/integrations/resources", tag = "resources", params(ResourcesQuery),
    responses((status = 200, body = List<ResourceEntry>), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn resources(
    State(state): State<AppState>,
    caller: Caller<Read>,
    ApiQuery(query): ApiQuery<ResourcesQuery>,
) -> ApiResult<Json<List<ResourceEntry>>> {
    let page = page_request(query.limit, query.cursor)?;
    let path = ResourcePath::parse(query.path.as_deref().unwrap_or("/")).map_err(|e| ApiError::invalid("path", e))?;
    if path != ResourcePath::Root && state.store.resolve(&caller.org.id, &path).await?.is_none() {
        return Err(ApiError::NotFound(format!("no resource at `{path}`")));
    }
    let found = state.store.children(&caller.org.id, &path, &page).await?;
    Ok(Json(List::from_page(found, |e| e)))
}
