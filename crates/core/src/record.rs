//! Telemetry records (values, events, alarms) and the triggers that route
//! them to egress integrations.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{DeviceId, IntegrationId, ResourcePath, TriggerId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Value,
    Event,
    Alarm,
}

impl RecordKind {
    pub const ALL: [RecordKind; 3] = [RecordKind::Value, RecordKind::Event, RecordKind::Alarm];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Event => "event",
            Self::Alarm => "alarm",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One record as stored and as delivered: the device is resolved to a
/// platform id; every optional field the sender gave is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub kind: RecordKind,
    pub device_id: DeviceId,
    /// The object (property) the record is about, e.g. `power` or `door_open`.
    pub property: String,
    /// When it was sampled, in ms since the epoch.
    pub timestamp: i64,
    /// Any JSON value.
    #[schema(value_type = Value)]
    pub payload: Value,
    /// When Switchyard accepted it, in ms.
    pub received_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub scaled_payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equipment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_interface_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_out_of_service: Option<bool>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The sender's id for the record; a record whose id was seen before is not stored again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Record {
    /// A record with only its required fields; the optional ones are absent.
    pub fn new(kind: RecordKind, device_id: DeviceId, property: String, timestamp: i64, payload: Value) -> Self {
        Self {
            kind,
            device_id,
            property,
            timestamp,
            payload,
            received_at: timestamp,
            scaled_payload: None,
            name: None,
            unit: None,
            external_id: None,
            property_id: None,
            equipment_id: None,
            gateway_interface_id: None,
            slug: None,
            is_out_of_service: None,
            tags: BTreeMap::new(),
            id: None,
        }
    }
}

/// What decides that an egress integration receives a record: its kind, its
/// object (exact or `*` glob; any when empty), and where its device is (a
/// Place covers its subtree; anywhere when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub id: TriggerId,
    pub integration_id: IntegrationId,
    pub name: String,
    pub kinds: Vec<RecordKind>,
    pub objects: Vec<String>,
    pub scope: Vec<ResourcePath>,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `*` matches any run of characters (none included); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t) in [
            ("*", ""),
            ("*", "power"),
            ("power", "power"),
            ("pow*", "power"),
            ("*er", "power"),
            ("p*w*r", "power"),
            ("a*b*c", "aXbYbZc"),
        ] {
            assert!(glob_match(p, t), "{p} should match {t}");
        }
        for (p, t) in [("power", "powers"), ("pow*x", "power"), ("*x", "power"), ("", "a"), ("a*b", "ba")] {
            assert!(!glob_match(p, t), "{p} should not match {t}");
        }
    }
}
