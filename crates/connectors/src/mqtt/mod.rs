//! MQTT (EGRESS): each record published to an external broker over MQTT
//! 3.1.1 or 5, on TCP, TLS, WebSocket or secure WebSocket. With QoS 1 or 2 a
//! delivery succeeds only once the broker has acknowledged the message.
mod classify;
mod config;
mod egress;
mod link;
mod tls;

pub use config::{connection as config_connection, properties, MqttConfig};
pub use egress::MqttEgress;

use crate::egress::{BuildError, Egress, EgressContext};
use crate::{Category, ConnectorType, DirectionSupport};
use switchyard_core::{Integration, Metadata};

pub const KEY: &str = "MQTT";

fn build(
    integration: &Integration,
    globals: &Metadata,
    _recipients: &[switchyard_core::Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(MqttEgress::new(MqttConfig::from_integration(integration)?, integration, globals, ctx)?))
}

pub fn connector_type(ingress: DirectionSupport) -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "MQTT broker".into(),
        description: "Subscribe to, or publish to, an external MQTT broker.".into(),
        category: Category::Standard,
        directions: vec![ingress, DirectionSupport::egress(properties(), config::check, build)],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
