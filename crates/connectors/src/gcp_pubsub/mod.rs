//! GCP_PUBSUB over the REST API, authenticated as a service account: a JWT
//! signed (RS256) with the account key is exchanged for an access token,
//! reused until it expires. EGRESS: each record published to a topic.
//! INGRESS: a subscription per topic, pulled, each message acknowledged
//! once stored.
mod config;
mod egress;
mod ingress;
mod token;

pub use config::{common, ingress_properties, properties, PubSubConfig};
pub use egress::PubSubEgress;
pub use ingress::PubSubIngress;

use switchyard_core::{Globals, Integration, Recipient};

use crate::egress::{BuildError, Egress, EgressContext};
use crate::ingress::Ingress;
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "GCP_PUBSUB";

fn build(
    integration: &Integration,
    _globals: &Globals,
    _recipients: &[Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(PubSubEgress::new(PubSubConfig::from_integration(integration)?, integration, ctx)?))
}

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    Ok(Box::new(PubSubIngress::new(&crate::shared::rendered(integration, globals)?, ctx)?))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Google Cloud Pub/Sub".into(),
        description: "Subscribe to, or publish to, Pub/Sub topics.".into(),
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
