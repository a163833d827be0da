//! Devices (Things): each in a Place, of a device type, with optional ids
//! from other systems.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchyard_core::input::{CreateDevice, UpdateDevice};
use switchyard_core::{Device, DeviceId, OrgId, PlaceId};
use utoipa::IntoParams;

use super::{page_request, path_id, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Only devices in this Place.
    pub place: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

async fn load(state: &AppState, org: &OrgId, raw: &str) -> ApiResult<Device> {
    let id: DeviceId = path_id(raw)?;
    state.store.get_device(org, &id).await?.ok_or_else(|| ApiError::not_found("device", &id))
}

#[utoipa::path(post, operation_id = "createDevice", path = "/v2/devices", tag = "devices", request_body = CreateDevice,
    responses((status = 201, body = Device), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 413, body = crate::Problem), (status = 415, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(body): ApiJson<CreateDevice>,
) -> ApiResult<(StatusCode, Json<Device>)> {
    Ok((StatusCode::CREATED, Json(state.engine.config().create_device(&caller.org.id, body).await?)))
}

#[utoipa::path(get, operation_id = "listDevices", path = "/v2/devices", tag = "devices", params(DeviceQuery),
    responses((status = 200, body = List<Device>), (status = 401, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    ApiQuery(query): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<List<Device>>> {
    let page = page_request(query.limit, query.cursor)?;
    let place = match &query.place {
        Some(raw) => Some(PlaceId::parse(raw).map_err(|e| ApiError::invalid("place", e.to_string()))?),
        None => None,
    };
    let found = state.store.list_devices(&caller.org.id, place.as_ref(), &page).await?;
    Ok(Json(List::from_page(found, |d| d)))
}

#[utoipa::path(get, operation_id = "getDevice", path = "/v2/devices/{deviceId}", tag = "devices", params(("deviceId" = String, Path, description = "`dev_` id")),
    responses((status = 200, body = Device), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Device>> {
    Ok(Json(load(&state, &caller.org.id, &id).await?))
}

#[utoipa::path(put, operation_id = "updateDevice", path = "/v2/devices/{deviceId}", tag = "devices", request_body = UpdateDevice,
    params(("deviceId" = String, Path, description = "`dev_` id")),
    responses((status = 200, body = Device), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateDevice>,
) -> ApiResult<Json<Device>> {
    let id: DeviceId = path_id(&id)?;
    Ok(Json(state.engine.config().update_device(&caller.org.id, &id, body).await?))
}

/// Deletes a device; 409 while resource mappings point at it.
#[utoipa::path(delete, operation_id = "deleteDevice", path = "/v2/devices/{deviceId}", tag = "devices", params(("deviceId" = String, Path, description = "`dev_` id")),
    responses((status = 204), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 409, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: DeviceId = path_id(&id)?;
    state.engine.config().delete_device(&caller.org.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
