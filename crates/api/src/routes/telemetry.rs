//! Telemetry in: a batch of values, events and alarms, answered 202 only
//! once the records and their fan-out are durable. A thin handler over
//! `Engine::ingest`, the one ingest path every source uses. And telemetry
//! read back: stored records, newest first, with their sources.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_core::{DeviceId, Record, RecordDraft, RecordId, RecordKind, RecordSource};
use switchyard_store::RecordFilter;
use utoipa::{IntoParams, ToSchema};

use super::{page_request, List};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryBatch {
    /// 1 to 1,000 records; all are stored or none.
    #[schema(min_items = 1, max_items = 1000)]
    pub records: Vec<RecordDraft>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Records stored now.
    pub accepted: usize,
    /// Records whose id was seen before (not stored again).
    pub duplicates: usize,
    /// Deliveries created for egress integrations.
    pub deliveries: usize,
}

/// Accepts a batch of records. 202 means stored, with the deliveries they
/// trigger; invalid records are refused with their index and field, and then
/// nothing of the batch is stored.
#[utoipa::path(post, operation_id = "ingestTelemetry", path = "/v2/telemetry", tag = "telemetry", request_body = TelemetryBatch,
    responses((status = 202, body = Accepted), (status = 400, body = crate::Problem), (status = 401, body = crate::Problem),
        (status = 403, body = crate::Problem), (status = 413, body = crate::Problem), (status = 415, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(batch): ApiJson<TelemetryBatch>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let source = RecordSource::ApiKey { api_key_id: caller.key.id.clone() };
    let outcome = state.engine.ingest(&caller.org.id, source, batch.records).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted { accepted: outcome.stored, duplicates: outcome.duplicates, deliveries: outcome.deliveries }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// Only this device's records (`dev_` id).
    #[serde(rename = "deviceId")]
    pub device_id: Option<String>,
    pub property: Option<String>,
    /// `value`, `event` or `alarm`.
    pub kind: Option<RecordKind>,
    /// Sampled at or after (ms since the epoch).
    pub from: Option<i64>,
    /// Sampled before (ms since the epoch).
    pub to: Option<i64>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

/// A stored record and where it came from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredRecordView {
    pub id: RecordId,
    pub record: Record,
    /// The API key that posted it, or the ingress integration that received
    /// it with the message's id in its message log.
    pub source: Option<RecordSource>,
}

/// Stored records, newest first (test-send samples aside).
#[utoipa::path(get, operation_id = "listTelemetry", path = "/v2/telemetry", tag = "telemetry", params(RecordQuery),
    responses((status = 200, body = List<StoredRecordView>), (status = 401, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    ApiQuery(query): ApiQuery<RecordQuery>,
) -> ApiResult<Json<List<StoredRecordView>>> {
    let page = page_request(query.limit, query.cursor)?;
    let device = match query.device_id.as_deref() {
        Some(raw) => Some(
            DeviceId::parse(raw).map_err(|_| ApiError::invalid("deviceId", format!("`{raw}` is not a device id")))?,
        ),
        None => None,
    };
    if let Some(p) = &query.property {
        let mut errors = switchyard_core::ValidationErrors::default();
        switchyard_core::draft::check_text(|| "property".into(), Some(p), true, &mut errors);
        errors.into_result()?;
    }
    let filter = RecordFilter { device, property: query.property, kind: query.kind, from: query.from, to: query.to };
    let found = state.store.list_records(&caller.org.id, &filter, &page).await?;
    Ok(Json(List::from_page(found, |r| StoredRecordView { id: r.id, record: r.record, source: r.source })))
}
