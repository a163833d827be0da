//! GCP_PUBSUB (EGRESS): each record published to a Pub/Sub topic over the
//! REST API, authenticated as a service account: a JWT signed (RS256) with
//! the account key is exchanged for an access token, reused until it expires.
mod config;
mod egress;
mod token;

pub use config::{common, properties, PubSubConfig};
pub use egress::PubSubEgress;

use switchyard_core::{Globals, Integration, Recipient};

use crate::egress::{BuildError, Egress, EgressContext};
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

/// `ingress`: the subscribing direction, listed from `planned`.
pub fn connector_type(ingress: DirectionSupport) -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Google Cloud Pub/Sub".into(),
        description: "Subscribe to, or publish to, Pub/Sub topics.".into(),
        category: Category::Standard,
        directions: vec![ingress, DirectionSupport::egress(properties(), config::check, build)],
        message: crate::Message::Published,
        recipients: None,
        send_code: None,
    }
}
