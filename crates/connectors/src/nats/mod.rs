//! NATS (EGRESS): each record published to a subject; with JetStream on,
//! a delivery succeeds only once a stream has stored the message (its ack),
//! and the delivery id is the JetStream message id, so a retry of a message
//! the stream already holds is dropped there as a duplicate.
mod classify;
mod config;
mod egress;

pub use config::{properties, NatsConfig};
pub use egress::NatsEgress;

use crate::egress::{BuildError, Egress, EgressContext};
use crate::{Category, ConnectorType, DirectionSupport};
use switchyard_core::{Globals, Integration};

pub const KEY: &str = "NATS";

fn build(
    integration: &Integration,
    globals: &Globals,
    _recipients: &[switchyard_core::Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(NatsEgress::new(NatsConfig::from_integration(integration)?, integration, globals, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "NATS".into(),
        description: "Publish each record to a NATS subject, optionally to JetStream with acknowledgements.".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::egress(properties(), config::check, build)],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
