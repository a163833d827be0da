//! AZURE_EVENT_HUBS (EGRESS): each record sent to an event hub over AMQP
//! 1.0. Against Azure: TLS, SASL ANONYMOUS and a SAS token put on the
//! claims-based-security node ($cbs). Against the development emulator
//! (`UseDevelopmentEmulator=true`): plain AMQP with SASL PLAIN.
mod config;
mod egress;
pub mod sas;

pub use config::{common, properties, EventHubsConfig};
pub use egress::EventHubsEgress;

use switchyard_core::{Globals, Integration, Recipient};

use crate::egress::{BuildError, Egress, EgressContext};
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "AZURE_EVENT_HUBS";

fn build(
    integration: &Integration,
    globals: &Globals,
    _recipients: &[Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(EventHubsEgress::new(EventHubsConfig::from_integration(integration)?, integration, globals, ctx)?))
}

/// `ingress`: the consuming direction, listed from `planned`.
pub fn connector_type(ingress: DirectionSupport) -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Azure Event Hubs".into(),
        description: "Consume from, or send to, an event hub.".into(),
        category: Category::Standard,
        directions: vec![ingress, DirectionSupport::egress(properties(), config::check, build)],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
