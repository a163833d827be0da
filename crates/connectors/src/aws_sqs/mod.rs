//! AWS_SQS (EGRESS): each record sent to an SQS queue (JSON protocol,
//! Signature Version 4); FIFO queues get the device as the group and the
//! delivery id as the deduplication id.
mod egress;

pub use egress::SqsEgress;

use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Metadata, ValidationErrors};

use crate::egress::{BuildError, Egress, EgressContext};
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

fn build(
    integration: &Integration,
    _globals: &Metadata,
    _recipients: &[switchyard_core::Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(SqsEgress::new(integration, ctx)?))
}

/// `ingress`: the receiving direction, listed from `planned`.
pub fn connector_type(ingress: DirectionSupport) -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Amazon SQS".into(),
        description: "Receive from, or send to, an SQS queue.".into(),
        category: Category::Standard,
        directions: vec![ingress, DirectionSupport::egress(crate::aws::properties(queue_url()), check, build)],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
