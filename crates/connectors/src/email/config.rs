//! E-mail properties, parsed once per integration.
use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{rate_property, Settings};

pub fn properties() -> Vec<P> {
    vec![
        P::new("smtpHost", "SMTP host", K::String).required(),
        P::new("smtpPort", "SMTP port", K::Number)
            .range(1.0, 65535.0)
            .describe("Defaults to 587 (STARTTLS), 465 (TLS) or 25 (NONE)."),
        P::new("security", "Security", K::Enum).options(&["STARTTLS", "TLS", "NONE"]).default(json!("STARTTLS")),
        P::new("caCertificate", "CA certificate (PEM)", K::String)
            .describe("Trusted beside the public roots, for a relay with a private CA (STARTTLS, TLS)."),
        P::new("username", "Username", K::String),
        P::new("password", "Password", K::Secret).describe("With username: log in (PLAIN or LOGIN)."),
        P::new("from", "From", K::Email).required(),
        P::new("fromName", "From name", K::String).default(json!("Switchyard")),
        P::new("subjectTemplate", "Subject template", K::Template)
            .required()
            .default(json!("{{ record.kind | upper }}: {{ record.property }} on {{ device.name or record.deviceId }}")),
        P::new("bodyTemplate", "Text body template", K::Template).required().default(json!(
            "{{ record.kind | capitalize }} {{ record.property }} = {{ record.payload | tojson }} at {{ published.sampled_at }}\n\
             Device: {{ device.name or record.deviceId }}{% if place %} in {{ place.name }}{% endif %}\n"
        )),
        P::new("htmlTemplate", "HTML body template", K::Template)
            .describe("Sent beside the text body (multipart/alternative) when set."),
        rate_property(),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    StartTls,
    Tls,
    None,
}

pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub login: Option<(String, Secret)>,
    pub ca: Option<String>,
    pub from: String,
    pub from_name: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub rate: f64,
}

impl EmailConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let security = match s.text("security")?.unwrap_or("STARTTLS") {
            "TLS" => Security::Tls,
            "NONE" => Security::None,
            _ => Security::StartTls,
        };
        let default_port = match security {
            Security::StartTls => 587,
            Security::Tls => 465,
            Security::None => 25,
        };
        let login = match (s.text("username")?, s.secret("password")?) {
            (Some(u), Some(pw)) => Some((u.to_owned(), pw)),
            _ => None,
        };
        Ok(Self {
            host: s.required("smtpHost")?.to_owned(),
            port: s.number("smtpPort")?.map(|n| n as u16).unwrap_or(default_port),
            security,
            login,
            ca: s.text("caCertificate")?.map(str::to_owned),
            from: s.required("from")?.to_owned(),
            from_name: s.text("fromName")?.unwrap_or("Switchyard").to_owned(),
            subject: s.required("subjectTemplate")?.to_owned(),
            body: s.required("bodyTemplate")?.to_owned(),
            html: s.text("htmlTemplate")?.map(str::to_owned),
            rate: s.rate()?,
        })
    }
}

/// A password needs a username.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    if s.secret("password").ok().flatten().is_some() && s.text("username").ok().flatten().is_none() {
        errors.push("properties.username", "is required with a password");
    }
    if let Some(ca) = s.text("caCertificate").ok().flatten() {
        if lettre::transport::smtp::client::Certificate::from_pem(ca.as_bytes()).is_err() {
            errors.push("properties.caCertificate", "is not a PEM certificate");
        }
    }
    if s.number("smtpPort").ok().flatten().is_some_and(|n| n.fract() != 0.0) {
        errors.push("properties.smtpPort", "must be a whole number");
    }
    errors.into_result()
}
