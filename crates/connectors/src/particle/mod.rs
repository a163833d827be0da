//! PARTICLE (INGRESS): a Particle event stream (server-sent events) —
//! the account's devices' events (`mine`), one device's, a product's or an
//! organization's — each event a message to store. Particle sends a
//! keep-alive every 9 s; 13 s without anything gives the link up.
mod ingress;
mod sse;

pub use ingress::{ParticleConfig, ParticleIngress};

use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Globals, Integration, ValidationErrors};

use crate::egress::{BuildError, EgressContext};
use crate::ingress::Ingress;
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "PARTICLE";

pub fn properties() -> Vec<P> {
    let mut own = vec![
        P::new("accessToken", "Access token", K::Secret).required().templated(),
        P::new("eventNames", "Event names", K::List).describe(
            "Which events are stored: a name, a prefix ending in `*`, or `*` (every event, the default). One name or \
             prefix is also asked of Particle, so only those events are sent.",
        ),
        P::new("deviceId", "Device name or id", K::String).describe("Only this device's events."),
        P::new("product", "Product slug or id", K::String).describe("A product's devices' events."),
        P::new("organization", "Organization slug", K::String).describe("An organization's events."),
        P::new("apiUrl", "API URL", K::Url)
            .default(json!("https://api.particle.io"))
            .describe("Particle's API (another base for a private cloud, or a local server in tests)."),
        P::new("keepAliveTimeoutSeconds", "Keep-alive timeout (s)", K::Number)
            .range(1.0, 300.0)
            .default(json!(13))
            .describe("With nothing from the stream for this long the link is given up and opened again."),
    ];
    let mut decoding = crate::decode::properties();
    for p in &mut decoding {
        // An event's data is one value, named after the event, from the device that published it.
        match &*p.name {
            "format" => p.default = Some(json!("raw")),
            "externalIdFrom" => p.default = Some(json!("attribute:coreid")),
            _ => {}
        }
    }
    own.extend(decoding);
    own
}

fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = properties();
    let s = crate::shared::Settings::of_resolved(&specs, resolved);
    let mut errors = ValidationErrors::default();
    if s.text("product").ok().flatten().is_some() && s.text("organization").ok().flatten().is_some() {
        errors.push("properties.organization", "a stream is a product's or an organization's, not both");
    }
    for (i, name) in s.strings("eventNames").unwrap_or_default().iter().enumerate() {
        let stem = name.strip_suffix('*').unwrap_or(name);
        if stem.contains('*') || stem.contains('/') || name.len() > 64 {
            errors.push(
                format!("properties.eventNames[{i}]"),
                "is a name, or a prefix ending in `*` (64 characters at most)",
            );
        }
    }
    crate::decode::check(resolved, &specs, errors)
}

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    let config = ParticleConfig::from_integration(&crate::shared::rendered(integration, globals)?)?;
    Ok(Box::new(ParticleIngress::new(config, ctx)))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Particle".into(),
        description: "Receive events from a Particle event stream.".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::ingress(properties(), check, build_ingress)],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    }
}
