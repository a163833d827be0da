//! EMAIL (EGRESS): an e-mail per record (alarms and events, as its triggers
//! choose) to the integration's active recipients, over SMTP with STARTTLS,
//! TLS or neither, and optional authentication.
mod config;
mod egress;

pub use config::{properties, EmailConfig};
pub use egress::EmailEgress;

use switchyard_core::{Globals, Integration, Recipient, RecipientKind};

use crate::egress::{BuildError, Egress, EgressContext};
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "EMAIL";

fn build(
    integration: &Integration,
    globals: &Globals,
    recipients: &[Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(EmailEgress::new(EmailConfig::from_integration(integration)?, integration, globals, recipients, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "E-mail".into(),
        description: "Send an e-mail per alarm or event to a list of recipients, over SMTP.".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::egress(properties(), config::check, build)],
        message: crate::Message::Published,
        recipients: Some(RecipientKind::Email),
        send_code: None,
    }
}
