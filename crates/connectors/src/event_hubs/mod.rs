//! AZURE_EVENT_HUBS over AMQP 1.0. EGRESS: each record sent to an event
//! hub. INGRESS: every partition of a hub read as a consumer group, each
//! event stored with its partition's checkpoint. Against Azure: TLS, SASL
//! ANONYMOUS and a SAS token put on the claims-based-security node ($cbs).
//! Against the development emulator (`UseDevelopmentEmulator=true`): plain
//! AMQP with SASL PLAIN.
mod config;
mod egress;
mod ingress;
mod link;
pub mod sas;

pub use config::{common, ingress_properties, properties, EventHubsConfig, IngressConfig};
pub use egress::EventHubsEgress;
pub use ingress::EventHubsIngress;

use switchyard_core::{Globals, Integration, Recipient};

use crate::egress::{BuildError, Egress, EgressContext};
use crate::ingress::Ingress;
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

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    Ok(Box::new(EventHubsIngress::new(&crate::shared::rendered(integration, globals)?, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Azure Event Hubs".into(),
        description: "Read every partition of, or send to, an event hub.".into(),
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
