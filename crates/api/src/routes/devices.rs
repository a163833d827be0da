//! Devices (Things): each in a Place, of a device type, with optional ids
//! from other systems.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchyard_core::{
    now_ms, validate_metadata, validate_name, Device, DeviceId, Metadata, OrgId, PlaceId, ValidationErrors,
};
use utoipa::{IntoParams, ToSchema};

use super::{deleted, page_request, path_id, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

const DEVICE_TYPE_MAX: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDevice {
    pub name: String,
    /// The Place the device is in.
    pub place_id: String,
    /// What kind of device it is, e.g. `meter`, `inverter`.
    pub device_type: String,
    /// Its ids in other systems, by system.
    #[serde(default)]
    pub external_ids: Metadata,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateDevice {
    pub name: Option<String>,
    pub place_id: Option<String>,
    pub device_type: Option<String>,
    pub external_ids: Option<Metadata>,
    pub metadata: Option<Metadata>,
}

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

fn check_device_type(value: &str, errors: &mut ValidationErrors) {
    if value.trim().is_empty() || value.len() > DEVICE_TYPE_MAX {
        errors.push("deviceType", format!("must be 1 to {DEVICE_TYPE_MAX} characters"));
    }
}

async fn place(state: &AppState, org: &OrgId, raw: &str) -> ApiResult<PlaceId> {
    let id = PlaceId::parse(raw).map_err(|e| ApiError::invalid("placeId", e.to_string()))?;
    match state.store.get_place(org, &id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::invalid("placeId", format!("no place `{id}`"))),
    }
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
    let mut errors = ValidationErrors::default();
    validate_name("name", &body.name, &mut errors);
    check_device_type(&body.device_type, &mut errors);
    validate_metadata("externalIds", &body.external_ids, &mut errors);
    validate_metadata("metadata", &body.metadata, &mut errors);
    errors.into_result()?;
    let place_id = place(&state, &caller.org.id, &body.place_id).await?;
    let now = now_ms();
    let device = Device {
        id: DeviceId::new(),
        name: body.name.trim().to_owned(),
        place_id,
        device_type: body.device_type.trim().to_owned(),
        external_ids: body.external_ids,
        metadata: body.metadata,
        created_at: now,
        updated_at: now,
    };
    state.store.create_device(&caller.org.id, &device).await?;
    Ok((StatusCode::CREATED, Json(device)))
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
    let mut device = load(&state, &caller.org.id, &id).await?;
    let mut errors = ValidationErrors::default();
    if let Some(name) = &body.name {
        validate_name("name", name, &mut errors);
    }
    if let Some(t) = &body.device_type {
        check_device_type(t, &mut errors);
    }
    if let Some(ids) = &body.external_ids {
        validate_metadata("externalIds", ids, &mut errors);
    }
    if let Some(metadata) = &body.metadata {
        validate_metadata("metadata", metadata, &mut errors);
    }
    errors.into_result()?;
    if let Some(raw) = &body.place_id {
        device.place_id = place(&state, &caller.org.id, raw).await?;
    }
    if let Some(name) = body.name {
        device.name = name.trim().to_owned();
    }
    if let Some(t) = body.device_type {
        device.device_type = t.trim().to_owned();
    }
    if let Some(ids) = body.external_ids {
        device.external_ids = ids;
    }
    if let Some(metadata) = body.metadata {
        device.metadata = metadata;
    }
    device.updated_at = now_ms();
    if !state.store.update_device(&caller.org.id, &device).await? {
        return Err(ApiError::not_found("device", &device.id));
    }
    state.engine.routes_changed(&caller.org.id);
    Ok(Json(device))
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
    let found = state.store.delete_device(&caller.org.id, &id).await?;
    state.engine.routes_changed(&caller.org.id);
    deleted(found, "device", &id)
}
