//! HTTP inbound: sources post their messages to Switchyard's own endpoint,
//! `POST /v2/inbound/{integrationId}[/{path}]`. The caller proves who it is
//! with a shared token, a Standard Webhooks signature or an HMAC-SHA256 of
//! the body; the request is answered 202 only once the message (its records,
//! or its reason in the message log) is stored, so a caller that retries
//! until it sees a 2xx loses nothing. The path after the id is the message's
//! topic: `topic:N` in `externalIdFrom` reads its levels.
mod config;
mod verify;

pub use config::{properties, InboundConfig};

use switchyard_core::{Globals, Integration};

use crate::egress::BuildError;
use crate::ingress::Endpoint;
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "HTTP_INBOUND";

fn build(integration: &Integration, globals: &Globals) -> Result<Box<dyn Endpoint>, BuildError> {
    let config = InboundConfig::from_integration(&crate::shared::rendered(integration, globals)?)?;
    Ok(Box::new(config))
}

pub fn connector_type() -> ConnectorType {
    let mut direction = DirectionSupport::endpoint(properties(), config::check, build);
    direction.prepare = config::prepare;
    ConnectorType {
        key: KEY.into(),
        name: "HTTP inbound".into(),
        description: "Receive data posted to an endpoint of your own, by token or signed webhooks.".into(),
        category: Category::Standard,
        directions: vec![direction],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    }
}

#[cfg(test)]
mod tests;
