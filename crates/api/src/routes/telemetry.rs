//! Telemetry in: a batch of values, events and alarms, answered 202 only
//! once the records and their fan-out are durable.
use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_core::{now_ms, DeviceId, Direction, IntegrationId, Record, RecordKind, ResourcePath, ValidationErrors};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Caller, Write};
use crate::state::AppState;

pub const MAX_RECORDS: usize = 1000;
const TEXT_MAX: usize = 256;

/// One record as sent. The device is named by `deviceId`, or by
/// `externalId` plus the `integrationId` of an ingress integration whose
/// resource mappings resolve it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordIn {
    pub kind: RecordKind,
    pub device_id: Option<String>,
    pub integration_id: Option<String>,
    pub external_id: Option<String>,
    pub property: String,
    /// When the value was sampled, ms since the epoch.
    pub timestamp: i64,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub received_at: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub scaled_payload: Option<Value>,
    pub name: Option<String>,
    pub unit: Option<String>,
    pub property_id: Option<String>,
    pub equipment_id: Option<String>,
    pub gateway_interface_id: Option<String>,
    pub slug: Option<String>,
    pub is_out_of_service: Option<bool>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Your id for the record: a record whose id was seen before is not stored twice.
    pub id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryBatch {
    /// 1 to 1,000 records; all are stored or none.
    pub records: Vec<RecordIn>,
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

/// `field` names the field only when there is an error to report: a valid
/// record costs no formatting.
fn check_text(field: impl FnOnce() -> String, value: Option<&str>, required: bool, errors: &mut ValidationErrors) {
    match value {
        None if required => errors.push(field(), "is required"),
        Some(v) if required && v.trim().is_empty() => errors.push(field(), "must not be empty"),
        Some(v) if v.len() > TEXT_MAX => errors.push(field(), format!("must be at most {TEXT_MAX} bytes")),
        _ => {}
    }
}

/// Accepts a batch of records. 202 means stored, with the deliveries they
/// trigger; invalid records are refused with their index and field, and then
/// nothing of the batch is stored.
#[utoipa::path(post, operation_id = "ingestTelemetry", path = "/v2/telemetry", tag = "telemetry", request_body = TelemetryBatch,
    responses((status = 202, body = Accepted), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 413, body = crate::Problem), (status = 415, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller<Write>,
    ApiJson(batch): ApiJson<TelemetryBatch>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let org = &caller.org.id;
    if batch.records.is_empty() || batch.records.len() > MAX_RECORDS {
        return Err(ApiError::invalid("records", format!("must hold 1 to {MAX_RECORDS} records")));
    }
    let received = now_ms();
    let mut errors = ValidationErrors::default();
    let mut records = Vec::with_capacity(batch.records.len());
    let mut resolver = Resolver::new(&state, org);
    for (i, r) in batch.records.into_iter().enumerate() {
        let at = |f: &str| format!("records[{i}].{f}");
        check_text(|| at("property"), Some(&r.property), true, &mut errors);
        check_text(|| at("id"), r.id.as_deref(), false, &mut errors);
        for (name, value) in [
            ("name", &r.name),
            ("unit", &r.unit),
            ("propertyId", &r.property_id),
            ("equipmentId", &r.equipment_id),
            ("gatewayInterfaceId", &r.gateway_interface_id),
            ("slug", &r.slug),
            ("externalId", &r.external_id),
        ] {
            check_text(|| at(name), value.as_deref(), false, &mut errors);
        }
        if r.timestamp <= 0 {
            errors.push(at("timestamp"), "must be a time in ms since the epoch");
        }
        if !r.tags.is_empty() {
            switchyard_core::validate_metadata(&at("tags"), &r.tags, &mut errors);
        }
        let Some(device_id) = resolver.device(&r, &at, &mut errors).await? else { continue };
        records.push(Record {
            kind: r.kind,
            device_id,
            property: r.property,
            timestamp: r.timestamp,
            payload: r.payload,
            received_at: r.received_at.unwrap_or(received),
            scaled_payload: r.scaled_payload,
            name: r.name,
            unit: r.unit,
            external_id: r.external_id,
            property_id: r.property_id,
            equipment_id: r.equipment_id,
            gateway_interface_id: r.gateway_interface_id,
            slug: r.slug,
            is_out_of_service: r.is_out_of_service,
            tags: r.tags,
            id: r.id,
        });
    }
    errors.into_result()?;
    let outcome = state.engine.ingest(org, records).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted { accepted: outcome.stored, duplicates: outcome.duplicates, deliveries: outcome.deliveries }),
    ))
}

/// Resolves the devices a batch names. Integrations and external ids are
/// looked up once per batch, however many records repeat them.
struct Resolver<'a> {
    state: &'a AppState,
    org: &'a switchyard_core::OrgId,
    /// Per integration: `None` when it may resolve external ids, else why not.
    integrations: HashMap<IntegrationId, Option<String>>,
    mappings: HashMap<(IntegrationId, String), Option<ResourcePath>>,
}

impl<'a> Resolver<'a> {
    fn new(state: &'a AppState, org: &'a switchyard_core::OrgId) -> Self {
        Self { state, org, integrations: HashMap::new(), mappings: HashMap::new() }
    }

    /// The platform device a record names, or why it names none (pushed to `errors`).
    async fn device(
        &mut self,
        r: &RecordIn,
        at: &(dyn Fn(&str) -> String + Sync),
        errors: &mut ValidationErrors,
    ) -> ApiResult<Option<DeviceId>> {
        if let Some(raw) = &r.device_id {
            let Ok(id) = DeviceId::parse(raw) else {
                errors.push(at("deviceId"), format!("`{raw}` is not a device id"));
                return Ok(None);
            };
            if self.state.engine.device_known(self.org, &id).await? {
                return Ok(Some(id));
            }
            errors.push(at("deviceId"), format!("no device `{id}`"));
            return Ok(None);
        }
        let (Some(integration), Some(external)) = (&r.integration_id, &r.external_id) else {
            errors.push(at("deviceId"), "is required, unless externalId and integrationId name a mapped device");
            return Ok(None);
        };
        let Ok(integration_id) = IntegrationId::parse(integration) else {
            errors.push(at("integrationId"), format!("`{integration}` is not an integration id"));
            return Ok(None);
        };
        if !self.integrations.contains_key(&integration_id) {
            let problem = match self.state.store.get_integration(self.org, &integration_id).await? {
                Some(i) if i.direction == Direction::Ingress => None,
                Some(_) => Some("must be an INGRESS integration".to_owned()),
                None => Some(format!("no integration `{integration_id}`")),
            };
            self.integrations.insert(integration_id.clone(), problem);
        }
        if let Some(Some(problem)) = self.integrations.get(&integration_id) {
            errors.push(at("integrationId"), problem.clone());
            return Ok(None);
        }
        let key = (integration_id, external.clone());
        if !self.mappings.contains_key(&key) {
            let found = self.state.store.find_mapping(self.org, &key.0, external).await?.map(|m| m.resource_path);
            self.mappings.insert(key.clone(), found);
        }
        match &self.mappings[&key] {
            Some(ResourcePath::Device(_, device)) => Ok(Some(device.clone())),
            Some(_) => {
                errors.push(at("externalId"), format!("`{external}` is mapped to a Place, not a device"));
                Ok(None)
            }
            None => {
                errors.push(at("externalId"), format!("`{external}` has no resource mapping in {}", key.0));
                Ok(None)
            }
        }
    }
}
