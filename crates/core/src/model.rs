//! The records the API manages. Those without secrets are served as they are;
//! an integration is served through a view that hides its secret values.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{ApiKeyId, DeviceId, IntegrationId, MappingId, OrgId, PlaceId, ResourcePath, Secret, ValidationErrors};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "INGRESS",
            Self::Egress => "EGRESS",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str().eq_ignore_ascii_case(s))
    }
}

/// `read` may GET; `write` may also create, update, delete and run actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Place,
    Device,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Place => "place",
            Self::Device => "device",
        }
    }
}

/// Free-form key/value pairs, bounded so one record cannot grow without limit.
pub type Metadata = BTreeMap<String, String>;

/// An organization's globals: values templated properties render with
/// (`{{ globals.site }}`), and secret ones, encrypted at rest and never
/// shown, that only secret properties may render. Reads as its plain values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Globals {
    pub values: Metadata,
    pub secrets: BTreeMap<String, crate::Secret>,
}

impl std::ops::Deref for Globals {
    type Target = Metadata;
    fn deref(&self) -> &Metadata {
        &self.values
    }
}

pub const METADATA_MAX_ENTRIES: usize = 64;
pub const METADATA_MAX_KEY: usize = 128;
pub const METADATA_MAX_VALUE: usize = 1024;
pub const NAME_MAX: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    /// Whether custom (first-party) integration types are offered to this organization.
    pub custom_integrations: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: String,
    /// The key's first characters, to tell keys apart; never the whole key.
    pub prefix: String,
    pub scope: Scope,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Place {
    pub id: PlaceId,
    pub name: String,
    pub parent_id: Option<PlaceId>,
    pub metadata: Metadata,
    /// Where it is: what weather integrations fetch for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub id: DeviceId,
    pub name: String,
    pub place_id: PlaceId,
    pub device_type: String,
    /// Ids this device has in other systems, by system (`{"serial": "A1-778"}`).
    pub external_ids: Metadata,
    pub metadata: Metadata,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Device {
    pub fn path(&self) -> ResourcePath {
        ResourcePath::Device(self.place_id.clone(), self.id.clone())
    }
}

/// An integration as stored. `properties` holds the non-secret values,
/// `secrets` the secret ones (encrypted by the store, never served).
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    pub id: IntegrationId,
    pub org_id: OrgId,
    pub name: String,
    pub type_key: String,
    pub direction: Direction,
    pub enabled: bool,
    pub properties: Map<String, Value>,
    pub secrets: BTreeMap<String, Secret>,
    pub metadata: Metadata,
    pub resource_paths: Vec<ResourcePath>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A link between an id in the external system and a Place or device.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMapping {
    pub id: MappingId,
    pub integration_id: IntegrationId,
    pub external_id: String,
    pub resource_type: ResourceType,
    #[schema(value_type = String)]
    #[serde(serialize_with = "crate::path::serialize_display")]
    pub resource_path: ResourcePath,
    /// For a device mapping: the device type it was required to have.
    pub device_type: Option<String>,
    pub created_at: i64,
}

/// One entry of `resources?path=`: a child of the path, with its own path.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceEntry {
    pub resource_type: ResourceType,
    pub id: String,
    pub name: String,
    #[schema(value_type = String)]
    #[serde(serialize_with = "crate::path::serialize_display")]
    pub path: ResourcePath,
    pub device_type: Option<String>,
}

/// Where a Place is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    /// Degrees north, -90 to 90.
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    /// Degrees east, -180 to 180.
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
    /// An IANA time zone (`Europe/Berlin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub timezone: Option<String>,
}

pub fn validate_location(field: &str, l: &Location, errors: &mut ValidationErrors) {
    if !(l.latitude.is_finite() && (-90.0..=90.0).contains(&l.latitude)) {
        errors.push(format!("{field}.latitude"), "must be between -90 and 90");
    }
    if !(l.longitude.is_finite() && (-180.0..=180.0).contains(&l.longitude)) {
        errors.push(format!("{field}.longitude"), "must be between -180 and 180");
    }
    if let Some(tz) = &l.timezone {
        if tz.len() > 64 || jiff::tz::TimeZone::get(tz).is_err() {
            errors.push(format!("{field}.timezone"), "must be an IANA time zone, such as Europe/Berlin or UTC");
        }
    }
}

pub fn validate_name(field: &str, name: &str, errors: &mut ValidationErrors) {
    if name.trim().is_empty() {
        errors.push(field, "is required and must not be blank");
    } else if name.chars().count() > NAME_MAX {
        errors.push(field, format!("must be at most {NAME_MAX} characters"));
    }
}

pub fn validate_metadata(field: &str, metadata: &Metadata, errors: &mut ValidationErrors) {
    if metadata.len() > METADATA_MAX_ENTRIES {
        errors.push(field, format!("must have at most {METADATA_MAX_ENTRIES} entries"));
    }
    for (i, (k, v)) in metadata.iter().enumerate() {
        // An invalid key is named by its position: echoing it (in the field
        // and again in the detail) would return whatever was sent.
        if k.is_empty() || k.chars().count() > METADATA_MAX_KEY {
            errors.push(field, format!("key {} (in key order) must be 1 to {METADATA_MAX_KEY} characters", i + 1));
        } else if v.chars().count() > METADATA_MAX_VALUE {
            errors.push(format!("{field}.{k}"), format!("values must be at most {METADATA_MAX_VALUE} characters"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_bounds_name_the_offending_key() {
        let mut errors = ValidationErrors::default();
        let mut m = Metadata::new();
        m.insert("site".into(), "x".repeat(METADATA_MAX_VALUE + 1));
        validate_metadata("metadata", &m, &mut errors);
        assert_eq!(errors.0[0].field, "metadata.site");
        let many: Metadata = (0..=METADATA_MAX_ENTRIES).map(|i| (i.to_string(), String::new())).collect();
        let mut errors = ValidationErrors::default();
        validate_metadata("metadata", &many, &mut errors);
        assert_eq!(errors.0[0].field, "metadata");
        let long_key: Metadata = [("k".repeat(METADATA_MAX_KEY + 1), "x".repeat(METADATA_MAX_VALUE + 1))].into();
        let mut errors = ValidationErrors::default();
        validate_metadata("metadata", &long_key, &mut errors);
        assert_eq!(errors.0.len(), 1, "one error for the entry");
        assert_eq!(errors.0[0].field, "metadata");
        assert!(!errors.to_string().contains(&"k".repeat(METADATA_MAX_KEY + 1)), "the key is not echoed");
    }

    #[test]
    fn names_must_not_be_blank() {
        let mut errors = ValidationErrors::default();
        validate_name("name", "  ", &mut errors);
        validate_name("name", "ok", &mut errors);
        assert_eq!(errors.0.len(), 1);
    }
}
