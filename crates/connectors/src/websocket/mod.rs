//! WEBSOCKET (INGRESS): a connection to a WebSocket server; every text or
//! binary message it sends is a message to store. The link is kept honest
//! by pings: a ping unanswered within the interval makes the status
//! `silent`, a second one gives the link up. WebSocket has no
//! acknowledgement: what the server sent while the link was down is the
//! server's to send again.
mod ingress;

pub use ingress::{WebSocketConfig, WebSocketIngress};

use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Globals, Integration, ValidationErrors};

use crate::egress::{BuildError, EgressContext};
use crate::ingress::Ingress;
use crate::shared::Settings;
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "WEBSOCKET";

pub fn properties() -> Vec<P> {
    let mut own = vec![
        P::new("url", "URL", K::Url).required().options(&["ws", "wss"]).templated(),
        P::new("headers", "Headers", K::List)
            .describe("`Name: value` lines sent with the opening handshake (an API key header, say)."),
        P::new("username", "Username", K::String).templated().describe("Basic authentication, with the password."),
        P::new("password", "Password", K::Secret).templated(),
        P::new("caCertificate", "CA certificate (PEM)", K::String)
            .describe("Trusted beside the public roots, for servers with a private CA."),
        P::new("clientCertificate", "Client certificate (PEM)", K::Secret),
        P::new("privateKey", "Private key (PEM)", K::Secret),
        P::new("verifyTls", "Verify the server's certificate", K::Bool)
            .default(json!(true))
            .describe("Off accepts any certificate (a test server's): the link is encrypted but not authenticated."),
        P::new("openMessage", "Message on open", K::String)
            .describe("Sent as text once the connection opens (a subscription request)."),
        P::new("pingIntervalSeconds", "Ping interval (s)", K::Number).range(1.0, 600.0).default(json!(30)).describe(
            "A ping this often; unanswered by the next one the status turns silent, and by the one after the \
             link is given up and opened again.",
        ),
    ];
    own.extend(crate::decode::properties());
    own
}

fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    let mut errors = ValidationErrors::default();
    crate::shared::check_headers(&s, &mut errors);
    if let Some(ca) = s.text("caCertificate").ok().flatten() {
        if let Err(e) = crate::tls::certificates(ca) {
            errors.push("properties.caCertificate", e);
        }
    }
    let (cert, key) = (s.secret("clientCertificate").ok().flatten(), s.secret("privateKey").ok().flatten());
    match (&cert, &key) {
        (Some(c), Some(k)) => {
            if let Err(e) = crate::tls::certificates(c.expose()) {
                errors.push("properties.clientCertificate", e);
            }
            if let Err(e) = crate::tls::private_key(k.expose()) {
                errors.push("properties.privateKey", e);
            }
        }
        (Some(_), None) => errors.push("properties.privateKey", "is required with a client certificate"),
        (None, Some(_)) => errors.push("properties.clientCertificate", "is required with a private key"),
        (None, None) => {}
    }
    crate::decode::check(resolved, &specs, errors)
}

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    let config = WebSocketConfig::from_integration(&crate::shared::rendered(integration, globals)?)?;
    Ok(Box::new(WebSocketIngress::new(config, ctx)))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "WebSocket server".into(),
        description: "Connect to a WebSocket server and take in its messages.".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::ingress(properties(), check, build_ingress)],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    }
}
