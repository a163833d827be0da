//! Telemetry in: a batch of values, events and alarms, answered 202 only
//! once the records and their fan-out are durable. A thin handler over
//! `Engine::ingest`, the one ingest path every source uses.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_core::{RecordDraft, RecordSource};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Caller, Write};
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
