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
    pub name: String,
    /// The parent Place; a root Place when absent.
    pub parent_id: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// Omitted fields are kept; `parentId: null` makes the Place a root.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePlace {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDevice {
    pub name: String,
    /// The Place the device is in.
    pub place_id: String,
    /// What kind of device it is, e.g. `meter`, `inverter`.
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
    pub name: Option<String>,
    pub place_id: Option<String>,
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
    pub external_id: String,
    /// The Place or device it stands for.
    pub resource_path: String,
    /// When given, the device must be of this type.
    pub device_type: Option<String>,
}
