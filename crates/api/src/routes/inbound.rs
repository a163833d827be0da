//! HTTP inbound: the endpoint sources post their messages to. No API key:
//! the caller proves who it is as the integration says (a shared token or a
//! signature), and is answered 202 only once its message is durable.
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Serialize;
use switchyard_connectors::{InboundRequest, Refusal};
use switchyard_core::{now_ms, IntegrationKind, MessageId, MessageOutcome};
use switchyard_engine::ingress::InboundError;
use utoipa::ToSchema;

use super::path_id;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What became of the posted message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundAccepted {
    /// Its entry in the integration's message log.
    #[schema(value_type = String)]
    pub message_id: MessageId,
    /// `stored`, `duplicate` (its `webhook-id` or `Idempotency-Key` was seen before), `unmapped` or `decode_error`
    /// (kept in the message log with why).
    pub outcome: MessageOutcome,
    /// Records stored from it.
    pub records: usize,
}

/// Posts one message to an HTTP inbound integration. 202 once it is stored
/// (its records, or its reason in the message log); a retried request with the
/// same `webhook-id` or `Idempotency-Key` is stored once.
#[utoipa::path(post, operation_id = "postInbound", path = "/v2/inbound/{integrationId}", tag = "inbound",
    params(("integrationId" = String, Path, description = "`int_` id of an HTTP_INBOUND integration")),
    request_body(content = String, description = "The message, in the integration's format", content_type = "application/json"),
    responses((status = 202, body = InboundAccepted), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 413, body = crate::Problem), (status = 415, body = crate::Problem),
        (status = 429, description = "Over the rate limit: retry after `Retry-After` seconds", body = crate::Problem),
        (status = 503, description = "Disabled, restarting or unable to store: retry after `Retry-After` seconds", body = crate::Problem)))]
pub async fn post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<InboundAccepted>)> {
    accept(&state, &id, "", &headers, &body).await
}

/// Posts one message with a path after the integration's id, which is its
/// topic (`externalIdFrom: topic:N` reads its levels; `raw` names its value after it).
#[utoipa::path(post, operation_id = "postInboundPath", path = "/v2/inbound/{integrationId}/{*path}", tag = "inbound",
    params(("integrationId" = String, Path, description = "`int_` id of an HTTP_INBOUND integration"),
        ("path" = String, Path, description = "The message's topic, such as `sites/sensor-7/data`")),
    request_body(content = String, description = "The message, in the integration's format", content_type = "application/json"),
    responses((status = 202, body = InboundAccepted), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 413, body = crate::Problem), (status = 415, body = crate::Problem),
        (status = 429, description = "Over the rate limit: retry after `Retry-After` seconds", body = crate::Problem),
        (status = 503, description = "Disabled, restarting or unable to store: retry after `Retry-After` seconds", body = crate::Problem)))]
pub async fn post_path(
    State(state): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<InboundAccepted>)> {
    accept(&state, &id, &path, &headers, &body).await
}

async fn accept(
    state: &AppState,
    id: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<(StatusCode, Json<InboundAccepted>)> {
    let id = path_id::<IntegrationKind>(id)?;
    let request = InboundRequest { path, headers, body, received_at: now_ms() };
    let received = state.engine.inbound(&id, &request).await.map_err(|e| match e {
        InboundError::NotFound => ApiError::not_found("HTTP inbound integration", &id),
        InboundError::Unavailable(why) => ApiError::Unavailable(why, 5),
        InboundError::Throttled(wait) => ApiError::TooManyRequests(wait.as_secs_f64().ceil().max(1.0) as u64),
        InboundError::Refused(Refusal::Unauthorized(why)) => ApiError::Unauthorized(why.into()),
        InboundError::Refused(Refusal::TooLarge(limit)) => ApiError::PayloadTooLarge(limit),
        InboundError::Refused(Refusal::UnsupportedMediaType(why)) => {
            ApiError::Other(StatusCode::UNSUPPORTED_MEDIA_TYPE, why)
        }
    })?;
    let accepted = InboundAccepted { message_id: received.id, outcome: received.outcome, records: received.records };
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
