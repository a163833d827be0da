//! AMQP properties, parsed once per integration.
use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{objects_property, rate_property, Settings};

pub fn properties() -> Vec<P> {
    vec![
        P::new("url", "Broker URL", K::Url)
            .required()
            .options(&["amqp", "amqps"])
            .describe("`amqp://host:5672/vhost` or `amqps://…`; credentials go in username and password."),
        P::new("username", "Username", K::String).describe("guest when blank."),
        P::new("password", "Password", K::Secret),
        P::new("exchange", "Exchange", K::String)
            .required()
            .describe("Must exist on the broker; `amq.topic` for example."),
        P::new("routingKeyTemplate", "Routing key template", K::Template)
            .required()
            .default(json!("{{ record.kind }}.{{ record.deviceId }}.{{ record.property }}"))
            .describe("Rendered per record from `record` and `globals`."),
        P::new("persistent", "Persistent messages", K::Bool).default(json!(true)),
        objects_property(),
        rate_property(),
    ]
}

pub struct AmqpConfig {
    /// The URL as configured (no credentials), shown as the target.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub exchange: String,
    pub routing_key_template: String,
    pub persistent: bool,
    pub rate: f64,
}

impl AmqpConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let specs = properties();
        let s = Settings::new(&specs, i);
        Ok(Self {
            url: s.required("url")?.to_owned(),
            username: s.text("username")?.map(str::to_owned),
            password: s.secret("password")?,
            exchange: s.required("exchange")?.to_owned(),
            routing_key_template: s.required("routingKeyTemplate")?.to_owned(),
            persistent: s.flag("persistent")?,
            rate: s.rate()?,
        })
    }

    /// The URL to connect with: the configured one with the credentials set.
    pub fn connect_url(&self) -> Result<url::Url, String> {
        let mut url = url::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        let username = self.username.as_deref().unwrap_or("guest");
        let password =
            self.password.as_ref().map(Secret::expose).unwrap_or(if self.username.is_some() { "" } else { "guest" });
        url.set_username(username).map_err(|_| "url cannot carry a username".to_owned())?;
        url.set_password(Some(password)).map_err(|_| "url cannot carry a password".to_owned())?;
        Ok(url)
    }
}

/// Credentials belong in the secret password, never in the (visible) URL.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let specs = properties();
    let url = Settings::of_resolved(&specs, resolved).text("url").ok().flatten();
    if let Some(url) = url.and_then(|u| url::Url::parse(u).ok()) {
        if !url.username().is_empty() || url.password().is_some() {
            errors.push("properties.url", "must not contain credentials; use username and password");
        }
    }
    errors.into_result()
}
