//! Types the catalog lists as disabled ("coming soon") until their connector
//! works end to end; when a connector is built it moves to a folder of its own.
use switchyard_core::Direction;

use crate::{Category, ConnectorType, DirectionSupport};

pub(crate) fn types() -> Vec<ConnectorType> {
    use Direction::{Egress, Ingress};
    vec![ConnectorType {
        key: "LUA_SCRIPT".into(),
        name: "Scripted integration".into(),
        description: "A custom integration built from a manifest and Lua handlers.".into(),
        category: Category::Custom,
        directions: vec![DirectionSupport::planned(Ingress, vec![]), DirectionSupport::planned(Egress, vec![])],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    }]
}
