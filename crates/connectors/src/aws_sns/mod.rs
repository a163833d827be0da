//! AWS_SNS (EGRESS): each record published to an SNS topic, signed with
//! Signature Version 4 over the SNS query API.
mod egress;

pub use egress::SnsEgress;

use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Globals, Integration, ValidationErrors};

use crate::egress::{BuildError, Egress, EgressContext};
use crate::shared::Settings;
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "AWS_SNS";

pub fn properties() -> Vec<P> {
    crate::aws::properties(
        P::new("topicArn", "Topic ARN", K::String)
            .required()
            .describe("For example arn:aws:sns:us-east-2:123456789012:MainSolarData (.fifo for a FIFO topic)."),
    )
}

fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    if let Some(arn) = s.text("topicArn").ok().flatten() {
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
            errors.push("properties.topicArn", "must be an SNS topic ARN: arn:aws:sns:region:account:name");
        }
    }
    crate::aws::check_region(&s, &mut errors);
    errors.into_result()
}

fn build(
    integration: &Integration,
    _globals: &Globals,
    _recipients: &[switchyard_core::Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(SnsEgress::new(integration, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Amazon SNS".into(),
        description: "Publish each record to an SNS topic (to fan out to Lambda, SQS, e-mail…).".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::egress(properties(), check, build)],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
