//! WEBHOOK (EGRESS): records delivered to an HTTP endpoint, signed with
//! Standard Webhooks headers.
pub(crate) mod classify;
mod config;
mod digest;
mod egress;
pub mod sign;

pub use config::{properties, WebhookConfig};
pub use egress::WebhookEgress;

use crate::egress::{BuildError, Egress, EgressContext};
use crate::{Category, ConnectorType, DirectionSupport};
use switchyard_core::{Globals, Integration};

pub const KEY: &str = "WEBHOOK";

fn build(
    integration: &Integration,
    globals: &Globals,
    _recipients: &[switchyard_core::Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(WebhookEgress::new(WebhookConfig::from_integration(integration)?, globals, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Webhook".into(),
        description: "Send values, events and alarms to an HTTP endpoint, signed so the receiver can verify them."
            .into(),
        category: Category::Standard,
        directions: vec![DirectionSupport {
            prepare: config::prepare,
            on_update: config::rotate,
            ..DirectionSupport::egress(properties(), config::check, build)
        }],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    }
}
