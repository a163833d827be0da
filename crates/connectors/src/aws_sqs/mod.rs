//! AWS_SQS. EGRESS: each record sent to an SQS queue (JSON protocol,
//! Signature Version 4); FIFO queues get the device as the group and the
//! delivery id as the deduplication id. INGRESS: long polls of the queue,
//! each message deleted only once it is stored.
mod egress;
mod ingress;

pub use egress::SqsEgress;
pub use ingress::SqsIngress;

use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Globals, Integration, ValidationErrors};

use crate::egress::{BuildError, Egress, EgressContext};
use crate::ingress::Ingress;
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "AWS_SQS";

pub fn queue_url() -> P {
    P::new("queueUrl", "Queue URL", K::Url)
        .required()
        .describe("For example https://sqs.us-east-2.amazonaws.com/123456789012/readings (.fifo for a FIFO queue).")
}

fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let specs = crate::aws::properties(queue_url());
    crate::aws::check_region(&crate::shared::Settings::of_resolved(&specs, resolved), &mut errors);
    errors.into_result()
}

/// The receiving direction's properties: the queue and keys (each may be a
/// template over the globals), then the decoding ones.
pub fn ingress_properties() -> Vec<P> {
    let mut properties = crate::aws::properties(queue_url());
    properties.retain(|p| p.name != "objects" && p.name != "rateLimitPerSecond");
    for p in &mut properties {
        p.template = true;
    }
    properties.extend(crate::decode::properties());
    properties
}

fn check_ingress(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = ingress_properties();
    let mut errors = ValidationErrors::default();
    crate::aws::check_region(&crate::shared::Settings::of_resolved(&specs, resolved), &mut errors);
    crate::decode::check(resolved, &specs, errors)
}

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    Ok(Box::new(SqsIngress::new(&crate::shared::rendered(integration, globals)?, ctx)?))
}

fn build(
    integration: &Integration,
    _globals: &Globals,
    _recipients: &[switchyard_core::Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(SqsEgress::new(integration, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Amazon SQS".into(),
        description: "Receive from, or send to, an SQS queue.".into(),
        category: Category::Standard,
        directions: vec![
            DirectionSupport::ingress(ingress_properties(), check_ingress, build_ingress),
            DirectionSupport::egress(crate::aws::properties(queue_url()), check, build),
        ],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
