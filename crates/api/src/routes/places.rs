//! Places: a tree (a campus, its buildings, their floors).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchyard_core::{now_ms, validate_metadata, validate_name, Metadata, OrgId, Place, PlaceId, ValidationErrors};
use utoipa::{IntoParams, ToSchema};

use super::{deleted, double_option, page_request, path_id, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePlace {
    pub name: String,
    /// The parent Place; a root Place when absent.
    pub parent_id: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// Omitted fields are kept; `parentId: null` makes the Place a root.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePlace {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    pub metadata: Option<Metadata>,
}

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

/// Parses a parent id from a body and checks that the Place exists.
async fn parent(state: &AppState, org: &OrgId, raw: &str) -> ApiResult<PlaceId> {
    let id = PlaceId::parse(raw).map_err(|e| ApiError::invalid("parentId", e.to_string()))?;
    match state.store.get_place(org, &id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::invalid("parentId", format!("no place `{id}`"))),
    }
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
    let mut errors = ValidationErrors::default();
    validate_name("name", &body.name, &mut errors);
    validate_metadata("metadata", &body.metadata, &mut errors);
    errors.into_result()?;
    let parent_id = match &body.parent_id {
        Some(raw) => Some(parent(&state, &caller.org.id, raw).await?),
        None => None,
    };
    let now = now_ms();
    let place = Place {
        id: PlaceId::new(),
        name: body.name.trim().to_owned(),
        parent_id,
        metadata: body.metadata,
        created_at: now,
        updated_at: now,
    };
    state.store.create_place(&caller.org.id, &place).await?;
    Ok((StatusCode::CREATED, Json(place)))
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
    let mut place = load(&state, &caller.org.id, &id).await?;
    let mut errors = ValidationErrors::default();
    if let Some(name) = &body.name {
        validate_name("name", name, &mut errors);
    }
    if let Some(metadata) = &body.metadata {
        validate_metadata("metadata", metadata, &mut errors);
    }
    errors.into_result()?;
    match &body.parent_id {
        None => {}
        Some(None) => place.parent_id = None,
        Some(Some(raw)) => place.parent_id = Some(parent(&state, &caller.org.id, raw).await?),
    }
    if let Some(name) = body.name {
        place.name = name.trim().to_owned();
    }
    if let Some(metadata) = body.metadata {
        place.metadata = metadata;
    }
    place.updated_at = now_ms();
    if !state.store.update_place(&caller.org.id, &place).await? {
        return Err(ApiError::not_found("place", &place.id));
    }
    state.engine.routes_changed(&caller.org.id);
    Ok(Json(place))
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
    let found = state.store.delete_place(&caller.org.id, &id).await?;
    state.engine.routes_changed(&caller.org.id);
    deleted(found, "place", &id)
}
