//! The delivery log: every delivery, every attempt, and resending.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchyard_core::{now_ms, Attempt, AttemptOutcome, Delivery, DeliveryId, DeliveryStatus, Record, RecordSource};
use switchyard_store::{DeliveryFilter, LoggedDelivery};
use utoipa::{IntoParams, ToSchema};

use super::{page_request, path_id, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `retrying`, `succeeded` or `dead`.
    pub status: Option<DeliveryStatus>,
    /// Created at or after (ms since the epoch).
    pub from: Option<i64>,
    /// Created before (ms since the epoch).
    pub to: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

/// A delivery with what was sent and every attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    /// What was sent: the record (webhooks), or the published-data message of
    /// cloud and broker types (`published_at`, `device_id`, `data`,
    /// `integration_id`, `sampled_at`, `object` and the record's other fields);
    /// what the last attempt sent where that was something else: a rendered
    /// body template or a batch (as JSON when it is JSON, else as text, at most
    /// 4 KiB), a notification's text.
    #[schema(value_type = Object)]
    pub published_data: Value,
    /// What the far side said about the last attempt: `device` and
    /// `messageId` on success, `device` and `error` on failure; absent before
    /// the first attempt.
    #[schema(value_type = Option<Object>)]
    pub integration_data: Option<Value>,
    /// The stored record the delivery carries.
    pub record: Record,
    /// Where the record came from: the API key that posted it, or the ingress
    /// integration that received it (with the source's message id); absent
    /// for test-send samples.
    pub record_source: Option<RecordSource>,
    pub attempts: Vec<Attempt>,
}

impl DeliveryDetail {
    pub fn new(logged: LoggedDelivery, type_key: Option<&str>) -> Self {
        let LoggedDelivery { delivery, record, source, attempts } = logged;
        // What the last attempt sent, when it said (a template, a batch, a
        // notification's text); else the record or the published message,
        // which the record rebuilds exactly.
        let sent = attempts.last().and_then(|a| a.sent.as_deref());
        let published_data = match (sent, type_key.and_then(switchyard_connectors::find)) {
            (Some(text), _) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
            (None, Some(kind)) => kind.published_data(&record, &delivery.integration_id, delivery.id.as_str()),
            (None, None) => serde_json::to_value(&record).unwrap_or_default(),
        };
        let integration_data = attempts.last().map(|a| {
            let mut data = json!({ "device": record.device_id });
            match (&a.outcome, &a.error) {
                (AttemptOutcome::Delivered, _) => {
                    data["messageId"] = json!(a.remote_id);
                }
                (_, error) => {
                    data["error"] = json!(error);
                    if let Some(code) = a.status_code {
                        data["statusCode"] = json!(code);
                    }
                }
            }
            data
        });
        Self { delivery, published_data, integration_data, record, record_source: source, attempts }
    }
}

#[utoipa::path(get, operation_id = "listDeliveries", path = "/v2/integrations/{integrationId}/deliveries", tag = "deliveries",
    params(("integrationId" = String, Path, description = "`int_` id"), DeliveryQuery),
    responses((status = 200, body = List<Delivery>), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> ApiResult<Json<List<Delivery>>> {
    let page = page_request(query.limit, query.cursor)?;
    let integration = super::integrations::load(&state, &caller.org, &id).await?;
    let filter = DeliveryFilter { status: query.status, from: query.from, to: query.to };
    let found = state.store.list_deliveries(&caller.org.id, &integration.id, &filter, &page).await?;
    Ok(Json(List::from_page(found, |d| d)))
}

#[utoipa::path(get, operation_id = "getDelivery", path = "/v2/deliveries/{deliveryId}", tag = "deliveries",
    params(("deliveryId" = String, Path, description = "`dlv_` id")),
    responses((status = 200, body = DeliveryDetail), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    let id: DeliveryId = path_id(&id)?;
    let logged = logged(&state, &caller.org.id, &id).await?;
    let integration = state.store.get_integration(&caller.org.id, &logged.delivery.integration_id).await?;
    Ok(Json(DeliveryDetail::new(logged, integration.as_ref().map(|i| i.type_key.as_str()))))
}

/// Sends a finished (succeeded or dead) delivery again, with the same id and
/// a fresh retry schedule. 409 while it is still pending or retrying.
#[utoipa::path(post, operation_id = "resendDelivery", path = "/v2/deliveries/{deliveryId}/resend", tag = "deliveries",
    params(("deliveryId" = String, Path, description = "`dlv_` id")),
    responses((status = 202, body = Delivery), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 409, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn resend(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let id: DeliveryId = path_id(&id)?;
    let current = logged(&state, &caller.org.id, &id).await?.delivery;
    if !state.store.resend(&caller.org.id, &id, now_ms()).await? {
        return Err(ApiError::Conflict(format!(
            "the delivery is {}; only succeeded or dead deliveries can be resent",
            current.status.as_str()
        )));
    }
    state.engine.wake();
    let delivery = logged(&state, &caller.org.id, &id).await?.delivery;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// The organization's delivery as its log shows it, or 404.
async fn logged(state: &AppState, org: &switchyard_core::OrgId, id: &DeliveryId) -> ApiResult<LoggedDelivery> {
    state.store.get_delivery(org, id).await?.ok_or_else(|| ApiError::not_found("delivery", id))
}
