//! MQTT properties, parsed once per integration.
use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{objects_property, rate_property, Settings};

/// The connection properties both directions share, then the direction's own.
/// A receiving session is persistent by default (what the broker holds for
/// it while disconnected arrives on reconnect); a sending one is clean.
fn connection(own: Vec<P>, clean_session: bool) -> Vec<P> {
    let mut props = vec![
        P::new("protocol", "Protocol", K::Enum).options(&["mqtt", "mqtts", "ws", "wss"]).default(json!("mqtt")),
        P::new("host", "Host", K::String).required().templated(),
        P::new("port", "Port", K::Number)
            .range(1.0, 65535.0)
            .describe("Defaults to the protocol's: 1883, 8883, 80 (ws) or 443 (wss)."),
        P::new("path", "WebSocket path", K::String).default(json!("/mqtt")).describe("For ws and wss.").templated(),
        P::new("version", "Protocol version", K::Enum).options(&["3.1.1", "5"]).default(json!("3.1.1")),
        P::new("cleanSession", "Clean session", K::Bool).default(json!(clean_session)),
        P::new("keepAliveSeconds", "Keep-alive (s)", K::Number)
            .range(5.0, 3600.0)
            .default(json!(30))
            .describe("How often the link is checked with a ping; a missed answer ends the connection."),
        P::new("clientId", "Client id", K::String)
            .describe("`switchyard-` and the integration id when blank.")
            .templated(),
        P::new("authMethod", "Authentication", K::Enum)
            .options(&["NONE", "PASSWORD", "CERTIFICATE"])
            .default(json!("NONE")),
        P::new("username", "Username", K::String).required_when("authMethod", &["PASSWORD"]).templated(),
        P::new("password", "Password", K::Secret).required_when("authMethod", &["PASSWORD"]).templated(),
        P::new("clientCertificate", "Client certificate (PEM)", K::Secret)
            .required_when("authMethod", &["CERTIFICATE"]),
        P::new("privateKey", "Private key (PEM)", K::Secret).required_when("authMethod", &["CERTIFICATE"]),
        P::new("caCertificate", "CA certificate (PEM)", K::String)
            .describe("Trusted beside the public roots, for brokers with a private CA (mqtts, wss)."),
    ];
    props.extend(own);
    props
}

/// The sending direction's properties.
pub fn properties() -> Vec<P> {
    connection(
        vec![
            P::new("topicTemplate", "Topic template", K::Template)
                .required()
                .default(json!("switchyard/{{ record.kind }}/{{ record.deviceId }}/{{ record.property }}"))
                .describe("Rendered per record from `record` and `globals`."),
            P::new("qos", "QoS", K::Enum)
                .options(&["0", "1", "2"])
                .default(json!("1"))
                .describe("0: sent once, no acknowledgement; 1 and 2: delivered when the broker acknowledges."),
            P::new("retain", "Retain", K::Bool).default(json!(false)),
            objects_property(),
            rate_property(),
        ],
        true,
    )
}

/// The receiving direction's properties.
pub fn ingress_properties() -> Vec<P> {
    let mut own = vec![
        P::new("topics", "Topics", K::List).required().templated().describe(
            "Topic filters to subscribe to: `+` matches one level, `#` the rest; `$share/group/filter` shares a \
             subscription between clients (MQTT 5).",
        ),
        P::new("qos", "QoS", K::Enum).options(&["0", "1", "2"]).default(json!("1")).describe(
            "The subscription's QoS. With 1 and 2 a message is acknowledged only once it is stored; 0 has no \
             acknowledgement (what arrives while disconnected is lost).",
        ),
    ];
    own.extend(crate::decode::properties());
    connection(own, false)
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
    pub keep_alive: u64,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub v5: bool,
    pub clean_session: bool,
    pub client_id: Option<String>,
    pub auth: Auth,
    pub ca: Option<String>,
    pub qos: u8,
    /// Sending: the topic of each record.
    pub topic_template: String,
    pub retain: bool,
    pub rate: f64,
    /// Receiving: the filters subscribed to.
    pub topics: Vec<String>,
}

impl MqttConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let egress = i.direction == switchyard_core::Direction::Egress;
        let protocol = match s.text("protocol")?.unwrap_or("mqtt") {
            "mqtts" => Protocol::Mqtts,
            "ws" => Protocol::Ws,
            "wss" => Protocol::Wss,
            _ => Protocol::Mqtt,
        };
        let auth = match s.text("authMethod")?.unwrap_or("NONE") {
            "PASSWORD" => Auth::Password(s.required("username")?.to_owned(), s.need_secret("password")?),
            "CERTIFICATE" => Auth::Certificate {
                certificate: s.need_secret("clientCertificate")?,
                key: s.need_secret("privateKey")?,
            },
            _ => Auth::None,
        };
        Ok(Self {
            protocol,
            host: s.required("host")?.to_owned(),
            port: s.number("port")?.map(|n| n as u16).unwrap_or(protocol.default_port()),
            path: s.text("path")?.unwrap_or("/mqtt").to_owned(),
            v5: s.text("version")? == Some("5"),
            clean_session: s.flag("cleanSession")?,
            client_id: s.text("clientId")?.map(str::to_owned),
            auth,
            ca: s.text("caCertificate")?.map(str::to_owned),
            keep_alive: s.number("keepAliveSeconds")?.map_or(30, |n| n as u64),
            qos: s.text("qos")?.and_then(|q| q.parse().ok()).unwrap_or(1),
            topic_template: if egress { s.required("topicTemplate")?.to_owned() } else { String::new() },
            retain: egress && s.flag("retain")?,
            rate: if egress { s.rate()? } else { 0.0 },
            topics: if egress { vec![] } else { s.strings("topics")? },
        })
    }

    /// TLS for mqtts and wss: the CA, and the client certificate when the broker takes one.
    pub fn tls(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
        let client = match &self.auth {
            Auth::Certificate { certificate, key } => Some((certificate, key)),
            _ => None,
        };
        crate::tls::client_config(self.ca.as_deref(), client, true)
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

/// Checks the receiving direction: the shared checks, the topic filters and the decoding.
pub fn check_ingress(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = ingress_properties();
    let mut errors = check_with(&specs, resolved).err().unwrap_or_default();
    let s = Settings::of_resolved(&specs, resolved);
    for (i, topic) in s.strings("topics").unwrap_or_default().iter().enumerate() {
        if let Err(e) = topic_filter(topic) {
            errors.push(format!("properties.topics[{i}]"), e);
        }
    }
    crate::decode::check(resolved, &specs, errors)
}

/// A topic filter as MQTT allows it: `+` a whole level, `#` a whole last level.
pub(super) fn topic_filter(filter: &str) -> Result<(), String> {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((group, f)) if !group.is_empty() && !group.contains(['+', '#']) => f,
            _ => return Err("a shared subscription is `$share/group/filter`".into()),
        },
        None => filter,
    };
    if filter.is_empty() || filter.len() > 65535 {
        return Err("must be 1 to 65535 bytes".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("`#` must be a whole level, the last".into());
        }
        if level.contains('+') && *level != "+" {
            return Err("`+` must be a whole level".into());
        }
    }
    Ok(())
}

/// Whether `topic` matches the subscription `filter` (`+` one level, `#` the
/// rest; a shared subscription's `$share/group/` prefix is not part of it).
pub(super) fn topic_matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/").and_then(|rest| rest.split_once('/')) {
        Some((_, f)) => f,
        None => filter,
    };
    // Wildcards never match a topic starting with `$` at the first level.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for want in filter.split('/') {
        match (want, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (w, Some(level)) if w == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// Checks the sending direction.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    check_with(&properties(), resolved)
}

/// Certificates must be PEM; a client id must fit MQTT's limits; the port must be whole.
fn check_with(specs: &[P], resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let s = Settings::of_resolved(specs, resolved);
    if s.number("port").ok().flatten().is_some_and(|n| n.fract() != 0.0) {
        errors.push("properties.port", "must be a whole number");
    }
    if let Some(id) = s.text("clientId").ok().flatten() {
        if id.len() > 65535 {
            errors.push("properties.clientId", "must be at most 65535 bytes");
        }
    }
    if let Some(ca) = s.text("caCertificate").ok().flatten() {
        if let Err(e) = crate::tls::certificates(ca) {
            errors.push("properties.caCertificate", e);
        }
    }
    if let Some(cert) = s.secret("clientCertificate").ok().flatten() {
        if let Err(e) = crate::tls::certificates(cert.expose()) {
            errors.push("properties.clientCertificate", e);
        }
    }
    if let Some(key) = s.secret("privateKey").ok().flatten() {
        if let Err(e) = crate::tls::private_key(key.expose()) {
            errors.push("properties.privateKey", e);
        }
    }
    errors.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_match_filters_as_mqtt_says() {
        for (filter, topic, matches) in [
            ("sites/+/data", "sites/s-7/data", true),
            ("sites/+/data", "sites/s-7/other", false),
            ("sites/+/data", "sites/s-7/data/more", false),
            ("sites/#", "sites", true),
            ("sites/#", "sites/a/b/c", true),
            ("#", "anything/at/all", true),
            ("#", "$SYS/broker/load", false),
            ("+/x", "$SYS/x", false),
            ("$share/group/sites/+", "sites/a", true),
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
        ] {
            assert_eq!(topic_matches(filter, topic), matches, "{filter} ~ {topic}");
        }
        for (filter, ok) in
            [("a/#/b", false), ("a/b+", false), ("$share//x", false), ("$share/g/a/+", true), ("", false)]
        {
            assert_eq!(topic_filter(filter).is_ok(), ok, "{filter}");
        }
    }
}
