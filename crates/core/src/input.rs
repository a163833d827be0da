//! What a caller sends to create or change configuration: the same shapes
//! for the API, the console and configuration as code. The engine's
//! configuration service validates them; nothing else does.
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::Metadata;

/// For update bodies: tells "absent" (keep) from `null` (clear).
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePlace {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The parent Place; a root Place when absent.
    pub parent_id: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    pub location: Option<crate::Location>,
}

/// Omitted fields are kept; `parentId: null` makes the Place a root.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePlace {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    pub metadata: Option<Metadata>,
    /// `null` removes the location.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<crate::Location>)]
    pub location: Option<Option<crate::Location>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDevice {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The Place the device is in.
    pub place_id: String,
    /// What kind of device it is, e.g. `meter`, `inverter`.
    #[schema(min_length = 1, max_length = 100)]
    pub device_type: String,
    /// Its ids in other systems, by system.
    #[serde(default)]
    pub external_ids: Metadata,
    #[serde(default)]
    pub metadata: Metadata,
}

/// Omitted fields are kept.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateDevice {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub place_id: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    pub device_type: Option<String>,
    pub external_ids: Option<Metadata>,
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateMapping {
    /// The `int_` id of the integration the external id belongs to.
    pub integration_id: String,
    /// The id the external system uses.
    #[schema(min_length = 1, max_length = 256)]
    pub external_id: String,
    /// The Place or device it stands for.
    pub resource_path: String,
    /// When given, the device must be of this type.
    pub device_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTrigger {
    #[serde(default)]
    #[schema(max_length = 200)]
    pub name: String,
    /// `value`, `event`, `alarm`: at least one.
    pub kinds: Vec<crate::RecordKind>,
    #[serde(default)]
    pub objects: Vec<String>,
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Omitted fields are kept.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTrigger {
    pub name: Option<String>,
    pub kinds: Option<Vec<crate::RecordKind>>,
    pub objects: Option<Vec<String>>,
    pub scope: Option<Vec<String>>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntegration {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// A type key from the catalog.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Required only for types that support both directions.
    pub direction: Option<crate::Direction>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Values for the type's properties, secret ones included.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub metadata: Metadata,
    /// Places and devices this integration is tied to.
    #[serde(default)]
    pub resource_paths: Vec<String>,
}

/// A partial update: omitted fields are kept. In `properties`, a key
/// replaces its value, `null` clears it, and omitted keys (secrets too) are kept.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateIntegration {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
    pub metadata: Option<Metadata>,
    pub resource_paths: Option<Vec<String>>,
    /// Accepted only unchanged: the type is fixed at create.
    #[serde(rename = "type")]
    pub type_key: Option<String>,
    /// Accepted only unchanged: the direction is fixed at create.
    pub direction: Option<crate::Direction>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRecipient {
    /// An e-mail address (EMAIL integrations) or an E.164 phone number (SMS, PHONE).
    pub address: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRecipient {
    /// The six-digit code sent to the number.
    pub code: String,
}
