//! AMQP (EGRESS): each record published to a RabbitMQ-style exchange
//! (AMQP 0-9-1) with publisher confirms; a message counts as delivered only
//! once the broker has confirmed it.
mod classify;
mod config;
mod egress;

pub use config::{properties, AmqpConfig};
pub use egress::AmqpEgress;

use crate::egress::{BuildError, Egress, EgressContext};
use crate::{Category, ConnectorType, DirectionSupport};
use switchyard_core::{Globals, Integration};

pub const KEY: &str = "AMQP";

fn build(
    integration: &Integration,
    globals: &Globals,
    _recipients: &[switchyard_core::Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(AmqpEgress::new(AmqpConfig::from_integration(integration)?, integration, globals, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "AMQP 0-9-1".into(),
        description: "Publish each record to an exchange (RabbitMQ and compatible brokers), with publisher confirms."
            .into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::egress(properties(), config::check, build)],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
