//! Resource mappings: an external id (as the far system names a thing)
//! linked to a Place or a device of this organization.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchyard_core::{now_ms, MappingId, ResourceMapping, ResourcePath, ResourceType, ValidationErrors};
use utoipa::ToSchema;

use super::{deleted, page_request, path_id, List, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

const EXTERNAL_ID_MAX: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateMapping {
    /// The `int_` id of the integration the external id belongs to.
    pub integration_id: String,
    /// The id the external system uses.
    pub external_id: String,
    /// The Place or device it stands for.
    pub resource_path: String,
    /// When given, the device must be of this type.
    pub device_type: Option<String>,
}

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
    let mut errors = ValidationErrors::default();
    let external_id = body.external_id.trim();
    if external_id.is_empty() || external_id.len() > EXTERNAL_ID_MAX {
        errors.push("externalId", format!("must be 1 to {EXTERNAL_ID_MAX} characters"));
    }
    let path = match ResourcePath::parse(&body.resource_path) {
        Ok(ResourcePath::Root) => {
            errors.push("resourcePath", "must name a Place or a device");
            None
        }
        Ok(p) => Some(p),
        Err(e) => {
            errors.push("resourcePath", e);
            None
        }
    };
    if body.device_type.is_some() && !matches!(path, Some(ResourcePath::Device(..)) | None) {
        errors.push("deviceType", "applies only to a device path");
    }
    errors.into_result()?;
    let path = path.expect("validated above");
    let integration = super::integrations::load(&state, &caller.org, &body.integration_id).await?;
    let resource = state
        .store
        .resolve(&caller.org.id, &path)
        .await?
        .ok_or_else(|| ApiError::invalid("resourcePath", format!("no resource at `{path}`")))?;
    if let (Some(want), Some(got)) = (&body.device_type, &resource.device_type) {
        if want != got {
            return Err(ApiError::invalid("deviceType", format!("the device is of type `{got}`, not `{want}`")));
        }
    }
    let mapping = ResourceMapping {
        id: MappingId::new(),
        integration_id: integration.id,
        external_id: external_id.to_owned(),
        resource_type: path.resource_type().unwrap_or(ResourceType::Place),
        resource_path: path,
        device_type: body.device_type,
        created_at: now_ms(),
    };
    state.store.create_mapping(&caller.org.id, &mapping).await?;
    Ok((StatusCode::CREATED, Json(mapping)))
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
    deleted(state.store.delete_mapping(&caller.org.id, &id).await?, "resource mapping", &id)
}
