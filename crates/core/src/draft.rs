//! Records as every source hands them in (drafts), parsed once at the
//! boundary. A draft names its device by id or by an external id that an
//! integration's resource mappings resolve; parsing checks every field and
//! says which device it names, and only a parsed draft becomes a [`Record`]
//! once the device is known.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{ApiKeyId, DeviceId, IntegrationId, Record, RecordKind, ValidationErrors};

/// The longest text a record's fields take, in bytes.
pub const RECORD_TEXT_MAX: usize = 256;

/// One record as sent. The device is named by `deviceId`, or by
/// `externalId` plus the `integrationId` of an ingress integration whose
/// resource mappings resolve it (an ingress integration's own records need
/// no `integrationId`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordDraft {
    pub kind: RecordKind,
    #[schema(max_length = 256)]
    pub device_id: Option<String>,
    #[schema(max_length = 256)]
    pub integration_id: Option<String>,
    #[schema(max_length = 256)]
    pub external_id: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    pub property: String,
    /// When the value was sampled, ms since the epoch.
    #[schema(minimum = 1)]
    pub timestamp: i64,
    /// Any JSON value.
    #[schema(value_type = Value)]
    pub payload: Value,
    /// When the source received it, ms since the epoch (default: now).
    #[schema(minimum = 1)]
    pub received_at: Option<i64>,
    /// Any JSON value.
    #[schema(value_type = Option<Value>)]
    pub scaled_payload: Option<Value>,
    #[schema(max_length = 256)]
    pub name: Option<String>,
    #[schema(max_length = 256)]
    pub unit: Option<String>,
    #[schema(max_length = 256)]
    pub property_id: Option<String>,
    #[schema(max_length = 256)]
    pub equipment_id: Option<String>,
    #[schema(max_length = 256)]
    pub gateway_interface_id: Option<String>,
    #[schema(max_length = 256)]
    pub slug: Option<String>,
    pub is_out_of_service: Option<bool>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Your id for the record: a record whose id was seen before is not stored twice.
    #[schema(max_length = 256)]
    pub id: Option<String>,
}

/// The device a draft names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceRef {
    Id(DeviceId),
    /// An external id, resolved through the integration's resource mappings.
    External {
        integration: IntegrationId,
        external_id: String,
    },
}

/// Where records came from, stored with each of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RecordSource {
    /// Posted to the API with this key.
    #[serde(rename_all = "camelCase")]
    ApiKey { api_key_id: ApiKeyId },
    /// Received by an ingress integration, with the source's id of the message.
    #[serde(rename_all = "camelCase")]
    Integration { integration_id: IntegrationId, message_id: Option<String> },
}

impl RecordSource {
    /// The integration whose mappings resolve external ids when a draft names none.
    pub fn integration(&self) -> Option<&IntegrationId> {
        match self {
            Self::Integration { integration_id, .. } => Some(integration_id),
            Self::ApiKey { .. } => None,
        }
    }
    /// The stored form: the key's or the integration's id.
    pub fn id(&self) -> &str {
        match self {
            Self::ApiKey { api_key_id } => api_key_id.as_str(),
            Self::Integration { integration_id, .. } => integration_id.as_str(),
        }
    }
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Self::Integration { message_id, .. } => message_id.as_deref(),
            Self::ApiKey { .. } => None,
        }
    }
    /// Back from the stored id and message id; `None` for what no source wrote (samples).
    pub fn from_stored(id: Option<String>, message_id: Option<String>) -> Option<Self> {
        let id = id?;
        if id.starts_with("key_") {
            return Some(Self::ApiKey { api_key_id: ApiKeyId::from_stored(id) });
        }
        Some(Self::Integration { integration_id: IntegrationId::from_stored(id), message_id })
    }
}

/// A draft whose every field was checked: it becomes a record once its device is resolved.
#[derive(Debug, Clone)]
pub struct ParsedDraft {
    pub device: DeviceRef,
    draft: RecordDraft,
}

/// Refuses what no text field of a record may hold: blank when required,
/// longer than [`RECORD_TEXT_MAX`], or holding a NUL.
pub fn check_text(field: impl FnOnce() -> String, value: Option<&str>, required: bool, errors: &mut ValidationErrors) {
    match value {
        None if required => errors.push(field(), "is required"),
        Some(v) if required && v.trim().is_empty() => errors.push(field(), "must not be empty"),
        Some(v) if v.len() > RECORD_TEXT_MAX => {
            errors.push(field(), format!("must be at most {RECORD_TEXT_MAX} bytes"))
        }
        Some(v) if v.contains('\0') => errors.push(field(), "must not contain NUL characters"),
        _ => {}
    }
}

impl RecordDraft {
    /// A draft with only the required fields (a decoder's start).
    pub fn new(kind: RecordKind, property: String, timestamp: i64, payload: Value) -> Self {
        Self {
            kind,
            device_id: None,
            integration_id: None,
            external_id: None,
            property,
            timestamp,
            payload,
            received_at: None,
            scaled_payload: None,
            name: None,
            unit: None,
            property_id: None,
            equipment_id: None,
            gateway_interface_id: None,
            slug: None,
            is_out_of_service: None,
            tags: BTreeMap::new(),
            id: None,
        }
    }

    /// Checks every field and names the device. `at` turns a field name into
    /// its path (`records[3].property`); it is called only to report an
    /// error, so a valid record costs no formatting. `source` supplies the
    /// integration of an external id the draft gives without one.
    pub fn parse(
        self,
        at: &dyn Fn(&str) -> String,
        source: &RecordSource,
        errors: &mut ValidationErrors,
    ) -> Option<ParsedDraft> {
        let before = errors.0.len();
        check_text(|| at("property"), Some(&self.property), true, errors);
        for (name, value) in [
            ("id", &self.id),
            ("name", &self.name),
            ("unit", &self.unit),
            ("propertyId", &self.property_id),
            ("equipmentId", &self.equipment_id),
            ("gatewayInterfaceId", &self.gateway_interface_id),
            ("slug", &self.slug),
            ("externalId", &self.external_id),
            ("deviceId", &self.device_id),
            ("integrationId", &self.integration_id),
        ] {
            check_text(|| at(name), value.as_deref(), false, errors);
        }
        if self.timestamp <= 0 {
            errors.push(at("timestamp"), "must be a time in ms since the epoch");
        }
        if self.received_at.is_some_and(|t| t <= 0) {
            errors.push(at("receivedAt"), "must be a time in ms since the epoch");
        }
        if !self.tags.is_empty() {
            crate::validate_metadata(&at("tags"), &self.tags, errors);
            for (k, v) in &self.tags {
                if k.contains('\0') || v.contains('\0') {
                    errors.push(at("tags"), "must not contain NUL characters");
                    break;
                }
            }
        }
        if errors.0.len() > before {
            return None;
        }
        let device = self.device_ref(at, source, errors)?;
        Some(ParsedDraft { device, draft: self })
    }

    fn device_ref(
        &self,
        at: &dyn Fn(&str) -> String,
        source: &RecordSource,
        errors: &mut ValidationErrors,
    ) -> Option<DeviceRef> {
        if let Some(raw) = &self.device_id {
            return match DeviceId::parse(raw) {
                Ok(id) => Some(DeviceRef::Id(id)),
                Err(_) => {
                    errors.push(at("deviceId"), format!("`{raw}` is not a device id"));
                    None
                }
            };
        }
        let Some(external_id) = &self.external_id else {
            errors.push(at("deviceId"), "is required, unless externalId and integrationId name a mapped device");
            return None;
        };
        let integration = match (&self.integration_id, source.integration()) {
            (Some(raw), _) => match IntegrationId::parse(raw) {
                Ok(id) => id,
                Err(_) => {
                    errors.push(at("integrationId"), format!("`{raw}` is not an integration id"));
                    return None;
                }
            },
            (None, Some(own)) => own.clone(),
            (None, None) => {
                errors.push(at("deviceId"), "is required, unless externalId and integrationId name a mapped device");
                return None;
            }
        };
        Some(DeviceRef::External { integration, external_id: external_id.clone() })
    }
}

impl ParsedDraft {
    /// The record, on the device the draft named; `received_at` is used when
    /// the draft gave none.
    pub fn into_record(self, device_id: DeviceId, received_at: i64) -> Record {
        let d = self.draft;
        Record {
            kind: d.kind,
            device_id,
            property: d.property,
            timestamp: d.timestamp,
            payload: d.payload,
            received_at: d.received_at.unwrap_or(received_at),
            scaled_payload: d.scaled_payload,
            name: d.name,
            unit: d.unit,
            external_id: d.external_id,
            property_id: d.property_id,
            equipment_id: d.equipment_id,
            gateway_interface_id: d.gateway_interface_id,
            slug: d.slug,
            is_out_of_service: d.is_out_of_service,
            tags: d.tags,
            id: d.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft(v: Value) -> RecordDraft {
        serde_json::from_value(v).unwrap()
    }

    fn parse(v: Value, source: &RecordSource) -> Result<ParsedDraft, Vec<String>> {
        let mut errors = ValidationErrors::default();
        let at = |f: &str| format!("r.{f}");
        match draft(v).parse(&at, source, &mut errors) {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(errors.0.into_iter().map(|e| e.field).collect()),
        }
    }

    fn api() -> RecordSource {
        RecordSource::ApiKey { api_key_id: ApiKeyId::new() }
    }

    #[test]
    fn a_valid_draft_names_its_device_and_keeps_its_fields() {
        let device = DeviceId::new();
        let parsed = parse(
            json!({"kind": "value", "deviceId": device, "property": "power", "timestamp": 5, "payload": [1, 2],
                   "unit": "kW", "tags": {"site": "a"}}),
            &api(),
        )
        .unwrap();
        assert_eq!(parsed.device, DeviceRef::Id(device.clone()));
        let record = parsed.into_record(device, 9);
        assert_eq!((record.received_at, record.payload, record.unit.as_deref()), (9, json!([1, 2]), Some("kW")));
    }

    #[test]
    fn every_bad_field_is_named() {
        let base = json!({"kind": "value", "deviceId": DeviceId::new(), "property": "p", "timestamp": 1, "payload": 1});
        for (change, field) in [
            (json!({"property": ""}), "r.property"),
            (json!({"property": "a\u{0}b"}), "r.property"),
            (json!({"unit": "x".repeat(257)}), "r.unit"),
            (json!({"timestamp": 0}), "r.timestamp"),
            (json!({"receivedAt": -5}), "r.receivedAt"),
            (json!({"deviceId": "nope"}), "r.deviceId"),
            (json!({"tags": {"k": "a\u{0}"}}), "r.tags"),
        ] {
            let mut v = base.clone();
            for (k, x) in change.as_object().unwrap() {
                v[k] = x.clone();
            }
            assert_eq!(parse(v, &api()).unwrap_err(), [field]);
        }
    }

    #[test]
    fn external_ids_take_the_named_integration_or_the_source() {
        let named = IntegrationId::new();
        let own = IntegrationId::new();
        let source = RecordSource::Integration { integration_id: own.clone(), message_id: Some("m1".into()) };
        let v = json!({"kind": "event", "externalId": "s-7", "property": "p", "timestamp": 1, "payload": null});
        assert_eq!(
            parse(v.clone(), &source).unwrap().device,
            DeviceRef::External { integration: own, external_id: "s-7".into() }
        );
        let mut with = v.clone();
        with["integrationId"] = json!(named);
        assert_eq!(
            parse(with, &api()).unwrap().device,
            DeviceRef::External { integration: named, external_id: "s-7".into() }
        );
        assert_eq!(parse(v, &api()).unwrap_err(), ["r.deviceId"]);
    }

    #[test]
    fn sources_round_trip_through_their_stored_form() {
        for s in
            [api(), RecordSource::Integration { integration_id: IntegrationId::new(), message_id: Some("m".into()) }]
        {
            let back = RecordSource::from_stored(Some(s.id().to_owned()), s.message_id().map(str::to_owned));
            assert_eq!(back, Some(s));
        }
    }
}
