//! MQTT properties, parsed once per integration.
use serde_json::{json, Value};
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{objects_property, rate, rate_property, required, secret, text};

/// The connection properties both directions share; `topic` is the direction's own.
pub fn connection(topic: P) -> Vec<P> {
    vec![
        P::new("protocol", "Protocol", K::Enum).options(&["mqtt", "mqtts", "ws", "wss"]).default(json!("mqtt")),
        P::new("host", "Host", K::String).required(),
        P::new("port", "Port", K::Number)
            .range(1.0, 65535.0)
            .describe("Defaults to the protocol's: 1883, 8883, 80 (ws) or 443 (wss)."),
        P::new("path", "WebSocket path", K::String).default(json!("/mqtt")).describe("For ws and wss."),
        P::new("version", "Protocol version", K::Enum).options(&["3.1.1", "5"]).default(json!("3.1.1")),
        P::new("cleanSession", "Clean session", K::Bool).default(json!(true)),
        P::new("clientId", "Client id", K::String).describe("`switchyard-` and the integration id when blank."),
        P::new("authMethod", "Authentication", K::Enum)
            .options(&["NONE", "PASSWORD", "CERTIFICATE"])
            .default(json!("NONE")),
        P::new("username", "Username", K::String).required_when("authMethod", &["PASSWORD"]),
        P::new("password", "Password", K::Secret).required_when("authMethod", &["PASSWORD"]),
        P::new("clientCertificate", "Client certificate (PEM)", K::Secret)
            .required_when("authMethod", &["CERTIFICATE"]),
        P::new("privateKey", "Private key (PEM)", K::Secret).required_when("authMethod", &["CERTIFICATE"]),
        P::new("caCertificate", "CA certificate (PEM)", K::String)
            .describe("Trusted beside the public roots, for brokers with a private CA (mqtts, wss)."),
        topic,
    ]
}

pub fn properties() -> Vec<P> {
    let mut props = connection(
        P::new("topicTemplate", "Topic template", K::Template)
            .required()
            .default(json!("switchyard/{{ record.kind }}/{{ record.deviceId }}/{{ record.property }}"))
            .describe("Rendered per record from `record` and `globals`."),
    );
    props.extend([
        P::new("qos", "QoS", K::Enum)
            .options(&["0", "1", "2"])
            .default(json!("1"))
            .describe("0: sent once, no acknowledgement; 1 and 2: delivered when the broker acknowledges."),
        P::new("retain", "Retain", K::Bool).default(json!(false)),
        objects_property(),
        rate_property(),
    ]);
    props
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl Protocol {
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Mqtt => 1883,
            Protocol::Mqtts => 8883,
            Protocol::Ws => 80,
            Protocol::Wss => 443,
        }
    }
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Mqtts | Protocol::Wss)
    }
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::Mqtts => "mqtts",
            Protocol::Ws => "ws",
            Protocol::Wss => "wss",
        }
    }
}

pub enum Auth {
    None,
    Password(String, Secret),
    Certificate { certificate: Secret, key: Secret },
}

pub struct MqttConfig {
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub v5: bool,
    pub clean_session: bool,
    pub client_id: Option<String>,
    pub auth: Auth,
    pub ca: Option<String>,
    pub topic_template: String,
    pub qos: u8,
    pub retain: bool,
    pub rate: f64,
}

impl MqttConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let p = &i.properties;
        let need =
            |name: &str| secret(&i.secrets, name).ok_or_else(|| BuildError::Config(format!("{name} is not set")));
        let protocol = match text(p, "protocol").unwrap_or("mqtt") {
            "mqtts" => Protocol::Mqtts,
            "ws" => Protocol::Ws,
            "wss" => Protocol::Wss,
            _ => Protocol::Mqtt,
        };
        let auth = match text(p, "authMethod").unwrap_or("NONE") {
            "PASSWORD" => Auth::Password(required(p, "username")?.to_owned(), need("password")?),
            "CERTIFICATE" => Auth::Certificate { certificate: need("clientCertificate")?, key: need("privateKey")? },
            _ => Auth::None,
        };
        Ok(Self {
            protocol,
            host: required(p, "host")?.to_owned(),
            port: p.get("port").and_then(Value::as_u64).map(|n| n as u16).unwrap_or(protocol.default_port()),
            path: text(p, "path").unwrap_or("/mqtt").to_owned(),
            v5: text(p, "version") == Some("5"),
            clean_session: p.get("cleanSession").and_then(Value::as_bool).unwrap_or(true),
            client_id: text(p, "clientId").map(str::to_owned),
            auth,
            ca: text(p, "caCertificate").map(str::to_owned),
            topic_template: required(p, "topicTemplate")?.to_owned(),
            qos: text(p, "qos").and_then(|q| q.parse().ok()).unwrap_or(1),
            retain: p.get("retain").and_then(Value::as_bool).unwrap_or(false),
            rate: rate(p),
        })
    }

    /// Where messages go, as the delivery log shows it.
    pub fn target(&self) -> String {
        match self.protocol {
            Protocol::Ws | Protocol::Wss => {
                format!("{}://{}:{}{}", self.protocol.scheme(), self.host, self.port, self.path)
            }
            _ => format!("{}://{}:{}", self.protocol.scheme(), self.host, self.port),
        }
    }
}

/// Certificates must be PEM; a client id must fit MQTT's limits; the port must be whole.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if resolved.properties.get("port").and_then(Value::as_f64).is_some_and(|n| n.fract() != 0.0) {
        errors.push("properties.port", "must be a whole number");
    }
    if let Some(id) = text(&resolved.properties, "clientId") {
        if id.len() > 65535 {
            errors.push("properties.clientId", "must be at most 65535 bytes");
        }
    }
    if let Some(ca) = text(&resolved.properties, "caCertificate") {
        if let Err(e) = super::tls::certificates(ca) {
            errors.push("properties.caCertificate", e);
        }
    }
    if let Some(cert) = resolved.secrets.get("clientCertificate") {
        if let Err(e) = super::tls::certificates(cert.expose()) {
            errors.push("properties.clientCertificate", e);
        }
    }
    if let Some(key) = resolved.secrets.get("privateKey") {
        if let Err(e) = super::tls::private_key(key.expose()) {
            errors.push("properties.privateKey", e);
        }
    }
    errors.into_result()
}
