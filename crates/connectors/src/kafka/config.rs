//! Kafka properties, turned into librdkafka settings.
use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{objects_property, rate_property, Settings};

pub fn properties() -> Vec<P> {
    vec![
        P::new("bootstrapServers", "Bootstrap servers", K::List).required().describe("`host:9092`, one or more."),
        P::new("topic", "Topic", K::String).required(),
        P::new("keyTemplate", "Key template", K::Template)
            .default(json!("{{ record.deviceId }}"))
            .describe("The message key, rendered per record: one device's records stay in one partition, in order."),
        P::new("saslMechanism", "SASL mechanism", K::Enum)
            .options(&["NONE", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
            .default(json!("NONE")),
        P::new("username", "Username", K::String)
            .required_when("saslMechanism", &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        P::new("password", "Password", K::Secret)
            .required_when("saslMechanism", &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        P::new("tls", "TLS", K::Bool).default(json!(false)),
        P::new("caCertificate", "CA certificate (PEM)", K::String).describe("Trusted beside the system's roots (TLS)."),
        P::new("timeoutSeconds", "Delivery timeout (s)", K::Number)
            .range(1.0, 300.0)
            .default(json!(15))
            .describe("How long the producer tries before the attempt counts as failed (and is retried later)."),
        objects_property(),
        rate_property(),
    ]
}

pub struct KafkaConfig {
    pub servers: Vec<String>,
    pub topic: String,
    pub key_template: Option<String>,
    pub sasl: Option<(String, String, Secret)>,
    pub tls: bool,
    pub ca: Option<String>,
    pub timeout_ms: u64,
    pub rate: f64,
}

impl KafkaConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let specs = properties();
        let s = Settings::new(&specs, i);
        let sasl = match s.text("saslMechanism")?.unwrap_or("NONE") {
            "NONE" => None,
            mechanism => Some((mechanism.to_owned(), s.required("username")?.to_owned(), s.need_secret("password")?)),
        };
        Ok(Self {
            servers: s.strings("bootstrapServers")?,
            topic: s.required("topic")?.to_owned(),
            key_template: s.text("keyTemplate")?.map(str::to_owned),
            sasl,
            tls: s.flag("tls")?,
            ca: s.text("caCertificate")?.map(str::to_owned),
            timeout_ms: (s.number("timeoutSeconds")?.unwrap_or(15.0) * 1000.0) as u64,
            rate: s.rate()?,
        })
    }

    /// The librdkafka settings (the password among them: never logged).
    pub fn client_config(&self, client_id: &str) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", self.servers.join(","))
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", self.timeout_ms.to_string())
            .set("socket.timeout.ms", self.timeout_ms.clamp(10, 60_000).to_string())
            .set("log_level", "3");
        let protocol = match (&self.sasl, self.tls) {
            (None, false) => "plaintext",
            (None, true) => "ssl",
            (Some(_), false) => "sasl_plaintext",
            (Some(_), true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        if let Some((mechanism, user, password)) = &self.sasl {
            c.set("sasl.mechanisms", mechanism).set("sasl.username", user).set("sasl.password", password.expose());
        }
        if let Some(ca) = &self.ca {
            c.set("ssl.ca.pem", ca);
        }
        c
    }
}

/// Each bootstrap server is `host:port`; the topic is a legal Kafka name.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    for (i, server) in s.strings("bootstrapServers").unwrap_or_default().iter().enumerate() {
        let ok = server.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            errors.push(format!("properties.bootstrapServers[{i}]"), "must be host:port");
        }
    }
    if let Some(topic) = s.text("topic").ok().flatten() {
        let legal = topic.len() <= 249
            && topic != "."
            && topic != ".."
            && topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !legal {
            errors.push("properties.topic", "must be 1 to 249 of letters, digits, `.`, `_` and `-`");
        }
    }
    errors.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_is_idempotent_and_speaks_the_chosen_security_protocol() {
        let mut config = KafkaConfig {
            servers: vec!["a:9092".into(), "b:9092".into()],
            topic: "t".into(),
            key_template: None,
            sasl: None,
            tls: false,
            ca: None,
            timeout_ms: 15_000,
            rate: 20.0,
        };
        let c = config.client_config("switchyard-int_1");
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("bootstrap.servers"), Some("a:9092,b:9092"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        config.sasl = Some(("SCRAM-SHA-256".into(), "u".into(), Secret::new("p")));
        config.tls = true;
        let c = config.client_config("x");
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-256"));
    }
}
