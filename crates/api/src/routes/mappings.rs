//! Resource mappings: an external id (as the far system names a thing)
//! linked to a Place or a device of this organization.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchyard_core::input::CreateMapping;
use switchyard_core::{MappingId, ResourceMapping};

use super::{page_request, path_id, List, PageQuery};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

/// Maps an external id to a Place or device. 409 when the integration
/// already maps that external id.
#[utoipa::path(post, operation_id = "createResourceMapping", path = "/v2/integrations/resource-mappings", tag = "resource-mappings", request_body = CreateMapping,
    responses((status = 201, body = ResourceMapping), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 409, body = crate::Problem), (status = 413, body = crate::Problem),
        (status = 415, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(body): ApiJson<CreateMapping>,
) -> ApiResult<(StatusCode, Json<ResourceMapping>)> {
    Ok((StatusCode::CREATED, Json(state.engine.config().create_mapping(&caller.org.id, body).await?)))
}

/// The resource mappings of one integration.
#[utoipa::path(get, operation_id = "listResourceMappings", path = "/v2/integrations/{integrationId}/resource-mappings", tag = "resource-mappings",
    params(("integrationId" = String, Path, description = "`int_` id"), PageQuery),
    responses((status = 200, body = List<ResourceMapping>), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<List<ResourceMapping>>> {
    let page = page_request(query.limit, query.cursor)?;
    let integration = super::integrations::load(&state, &caller.org, &id).await?;
    let found = state.store.list_mappings(&caller.org.id, &integration.id, &page).await?;
    Ok(Json(List::from_page(found, |m| m)))
}

/// Deletes one resource mapping.
#[utoipa::path(delete, operation_id = "deleteResourceMapping", path = "/v2/integrations/resource-mappings/{mappingId}", tag = "resource-mappings",
    params(("mappingId" = String, Path, description = "`rm_` id")),
    responses((status = 204), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: MappingId = path_id(&id)?;
    state.engine.config().delete_mapping(&caller.org.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
