//! KAFKA (EGRESS): each record produced to a topic with librdkafka's
//! idempotent producer (acks from all in-sync replicas, no duplicates from
//! its own retries), keyed by a template.
mod classify;
mod config;
mod egress;

pub use config::{properties, KafkaConfig};
pub use egress::KafkaEgress;

use switchyard_core::{Globals, Integration, Recipient};

use crate::egress::{BuildError, Egress, EgressContext};
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "KAFKA";

fn build(
    integration: &Integration,
    globals: &Globals,
    _recipients: &[Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(KafkaEgress::new(KafkaConfig::from_integration(integration)?, integration, globals, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Kafka".into(),
        description: "Produce to a Kafka topic with an idempotent producer.".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::egress(properties(), config::check, build)],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
