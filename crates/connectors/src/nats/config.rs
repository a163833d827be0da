//! NATS properties, parsed once per integration.
use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{objects_property, rate_property, Settings};

pub fn properties() -> Vec<P> {
    vec![
        P::new("servers", "Servers", K::List)
            .required()
            .describe("`nats://host:4222` (or `tls://…`), one or more of the same cluster."),
        P::new("subjectTemplate", "Subject template", K::Template)
            .required()
            .default(json!("switchyard.{{ record.kind }}.{{ record.deviceId }}.{{ record.property }}"))
            .describe("Rendered per record from `record` and `globals`."),
        P::new("authMethod", "Authentication", K::Enum)
            .options(&["NONE", "TOKEN", "PASSWORD", "CREDENTIALS"])
            .default(json!("NONE")),
        P::new("token", "Token", K::Secret).required_when("authMethod", &["TOKEN"]),
        P::new("username", "Username", K::String).required_when("authMethod", &["PASSWORD"]),
        P::new("password", "Password", K::Secret).required_when("authMethod", &["PASSWORD"]),
        P::new("credentials", "Credentials (.creds file)", K::Secret)
            .required_when("authMethod", &["CREDENTIALS"])
            .describe("The contents of a .creds file: the user JWT and its NKey seed."),
        P::new("jetStream", "JetStream", K::Bool)
            .default(json!(false))
            .describe("Wait for a stream's acknowledgement; a stream must capture the subject."),
        objects_property(),
        rate_property(),
    ]
}

pub enum Auth {
    None,
    Token(Secret),
    Password(String, Secret),
    Credentials(Secret),
}

pub struct NatsConfig {
    pub servers: Vec<String>,
    pub subject_template: String,
    pub auth: Auth,
    pub jet_stream: bool,
    pub rate: f64,
}

impl NatsConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let specs = properties();
        let s = Settings::new(&specs, i);
        let auth = match s.text("authMethod")?.unwrap_or("NONE") {
            "TOKEN" => Auth::Token(s.need_secret("token")?),
            "PASSWORD" => Auth::Password(s.required("username")?.to_owned(), s.need_secret("password")?),
            "CREDENTIALS" => Auth::Credentials(s.need_secret("credentials")?),
            _ => Auth::None,
        };
        Ok(Self {
            servers: s.strings("servers")?,
            subject_template: s.required("subjectTemplate")?.to_owned(),
            auth,
            jet_stream: s.flag("jetStream")?,
            rate: s.rate()?,
        })
    }
}

/// Each server is `nats://` or `tls://` with a host; credentials go in the secret properties.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let specs = properties();
    let servers = Settings::of_resolved(&specs, resolved).strings("servers").unwrap_or_default();
    for (i, server) in servers.iter().enumerate() {
        let field = format!("properties.servers[{i}]");
        match url::Url::parse(server) {
            Ok(u) if !["nats", "tls"].contains(&u.scheme()) => {
                errors.push(field, "must be nats://host:port or tls://host:port")
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => errors.push(field, "must have a host"),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                errors.push(field, "must not contain credentials; use authMethod")
            }
            Ok(_) => {}
            Err(e) => errors.push(field, format!("is not a valid URL: {e}")),
        }
    }
    errors.into_result()
}
