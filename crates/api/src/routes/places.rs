//! Places: a tree (a campus, its buildings, their floors).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchyard_core::input::{CreatePlace, UpdatePlace};
use switchyard_core::{OrgId, Place, PlaceId};
use utoipa::IntoParams;

use super::{page_request, path_id, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlaceQuery {
    /// Only the children of this Place; `root` for root Places.
    pub parent: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

async fn load(state: &AppState, org: &OrgId, raw: &str) -> ApiResult<Place> {
    let id: PlaceId = path_id(raw)?;
    state.store.get_place(org, &id).await?.ok_or_else(|| ApiError::not_found("place", &id))
}

#[utoipa::path(post, operation_id = "createPlace", path = "/v2/places", tag = "places", request_body = CreatePlace,
    responses((status = 201, body = Place), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 413, body = crate::Problem), (status = 415, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(body): ApiJson<CreatePlace>,
) -> ApiResult<(StatusCode, Json<Place>)> {
    Ok((StatusCode::CREATED, Json(state.engine.config().create_place(&caller.org.id, body).await?)))
}

#[utoipa::path(get, operation_id = "listPlaces", path = "/v2/places", tag = "places", params(PlaceQuery),
    responses((status = 200, body = List<Place>), (status = 401, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    ApiQuery(query): ApiQuery<PlaceQuery>,
) -> ApiResult<Json<List<Place>>> {
    let page = page_request(query.limit, query.cursor)?;
    let parent = match query.parent.as_deref() {
        None => None,
        Some("root") => Some(None),
        Some(raw) => Some(Some(PlaceId::parse(raw).map_err(|e| ApiError::invalid("parent", e.to_string()))?)),
    };
    let found = state.store.list_places(&caller.org.id, parent.as_ref().map(Option::as_ref), &page).await?;
    Ok(Json(List::from_page(found, |p| p)))
}

#[utoipa::path(get, operation_id = "getPlace", path = "/v2/places/{placeId}", tag = "places", params(("placeId" = String, Path, description = "`plc_` id")),
    responses((status = 200, body = Place), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Place>> {
    Ok(Json(load(&state, &caller.org.id, &id).await?))
}

#[utoipa::path(put, operation_id = "updatePlace", path = "/v2/places/{placeId}", tag = "places", request_body = UpdatePlace,
    params(("placeId" = String, Path, description = "`plc_` id")),
    responses((status = 200, body = Place), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdatePlace>,
) -> ApiResult<Json<Place>> {
    let id: PlaceId = path_id(&id)?;
    Ok(Json(state.engine.config().update_place(&caller.org.id, &id, body).await?))
}

/// Deletes a Place; 409 while it has child Places, devices or mappings.
#[utoipa::path(delete, operation_id = "deletePlace", path = "/v2/places/{placeId}", tag = "places", params(("placeId" = String, Path, description = "`plc_` id")),
    responses((status = 204), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 409, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: PlaceId = path_id(&id)?;
    state.engine.config().delete_place(&caller.org.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
