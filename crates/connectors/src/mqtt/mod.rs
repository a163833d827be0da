//! MQTT, over 3.1.1 or 5, on TCP, TLS, WebSocket or secure WebSocket.
//! EGRESS: each record published to an external broker; with QoS 1 or 2 a
//! delivery succeeds only once the broker has acknowledged the message.
//! INGRESS: a subscription to topic filters on a persistent session; with
//! QoS 1 or 2 a message is acknowledged only once it is stored.
mod classify;
mod config;
mod egress;
mod ingress;
mod link;

pub use config::{ingress_properties, properties, MqttConfig};
pub use egress::MqttEgress;
pub use ingress::MqttIngress;

use crate::egress::{BuildError, Egress, EgressContext};
use crate::ingress::Ingress;
use crate::{Category, ConnectorType, DirectionSupport};
use switchyard_core::{Globals, Integration};

pub const KEY: &str = "MQTT";

fn build(
    integration: &Integration,
    globals: &Globals,
    _recipients: &[switchyard_core::Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    let config = MqttConfig::from_integration(&crate::shared::rendered(integration, globals)?)?;
    Ok(Box::new(MqttEgress::new(config, integration, globals, ctx)?))
}

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    let config = MqttConfig::from_integration(&crate::shared::rendered(integration, globals)?)?;
    Ok(Box::new(MqttIngress::new(config, integration, globals, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "MQTT broker".into(),
        description: "Subscribe to, or publish to, an external MQTT broker.".into(),
        category: Category::Standard,
        directions: vec![
            DirectionSupport::ingress(ingress_properties(), config::check_ingress, build_ingress),
            DirectionSupport::egress(properties(), config::check, build),
        ],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
