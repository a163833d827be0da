//! WEBHOOK (EGRESS): records delivered to an HTTP endpoint, signed with
//! Standard Webhooks headers.
mod config;

pub use config::properties;

use crate::{Category, ConnectorType, DirectionSupport};
use switchyard_core::Direction;

pub const KEY: &str = "WEBHOOK";

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY,
        name: "Webhook",
        description: "Send values, events and alarms to an HTTP endpoint, signed so the receiver can verify them.",
        category: Category::Standard,
        directions: vec![DirectionSupport { direction: Direction::Egress, available: true, properties: properties() }],
    }
}
