//! Event Hubs properties: a connection string, or host, policy and key.
use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{objects_property, rate_property, Settings};

/// The properties both directions share; `extra` is the direction's own.
pub fn common(extra: P) -> Vec<P> {
    vec![
        P::new("connectionString", "Connection string", K::Secret).describe(
            "Endpoint=sb://NAMESPACE.servicebus.windows.net/;SharedAccessKeyName=…;SharedAccessKey=…[;EntityPath=HUB]. \
             Or give host, policy name and policy key.",
        ),
        P::new("host", "Namespace host", K::String).describe("NAMESPACE.servicebus.windows.net"),
        P::new("policyName", "Policy name", K::String),
        P::new("policyKey", "Policy key", K::Secret),
        P::new("eventHub", "Event hub name", K::String).describe("Required unless the connection string has EntityPath."),
        extra,
    ]
}

pub fn properties() -> Vec<P> {
    let mut props = common(
        P::new("partitionKeyTemplate", "Partition key template", K::Template)
            .describe("Rendered per record (for example `{{ record.deviceId }}`): one device's events stay in order."),
    );
    props.push(objects_property());
    props.push(rate_property());
    props
}

/// Where and how to connect.
#[derive(Clone, PartialEq)]
pub struct Namespace {
    pub host: String,
    pub port: u16,
    pub key_name: String,
    pub key: String,
    pub hub: String,
    /// `UseDevelopmentEmulator=true`: plain AMQP, SASL PLAIN with the policy, no CBS.
    pub emulator: bool,
}

/// Never shows the key.
impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("key_name", &self.key_name)
            .field("hub", &self.hub)
            .field("emulator", &self.emulator)
            .finish_non_exhaustive()
    }
}

/// Parses `Endpoint=sb://host/;SharedAccessKeyName=…;SharedAccessKey=…;EntityPath=…`.
pub fn parse_connection_string(s: &str) -> Result<Namespace, String> {
    let mut ns = Namespace {
        host: String::new(),
        port: 0,
        key_name: String::new(),
        key: String::new(),
        hub: String::new(),
        emulator: false,
    };
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) =
            part.split_once('=').ok_or_else(|| format!("`{}…` is not Name=value", &part[..part.len().min(12)]))?;
        match k.to_ascii_lowercase().as_str() {
            "endpoint" => {
                let url = url::Url::parse(v).map_err(|e| format!("Endpoint: {e}"))?;
                ns.host = url.host_str().ok_or("Endpoint has no host")?.to_owned();
                if let Some(port) = url.port() {
                    ns.port = port;
                }
            }
            "sharedaccesskeyname" => ns.key_name = v.to_owned(),
            "sharedaccesskey" => ns.key = v.to_owned(),
            "entitypath" => ns.hub = v.to_owned(),
            "usedevelopmentemulator" => ns.emulator = v.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    if ns.port == 0 {
        // AMQPS for Azure; the emulator speaks plain AMQP.
        ns.port = if ns.emulator { 5672 } else { 5671 };
    }
    for (value, name) in [(&ns.host, "Endpoint"), (&ns.key_name, "SharedAccessKeyName"), (&ns.key, "SharedAccessKey")] {
        if value.is_empty() {
            return Err(format!("has no {name}"));
        }
    }
    Ok(ns)
}

/// The receiving direction's properties: the namespace, hub and consumer
/// group (each may be a template over the globals), where a partition
/// without a checkpoint starts, the partition keys taken, the owner level,
/// then the decoding ones.
pub fn ingress_properties() -> Vec<P> {
    let mut props = common(
        P::new("consumerGroup", "Consumer group", K::String)
            .default(json!("$Default"))
            .describe("The hub's consumer group to read as; give each reader of a hub its own."),
    );
    for p in &mut props {
        p.template = true;
    }
    props.extend([
        P::new("startPosition", "Start at", K::Enum)
            .options(&[START_LATEST, START_EARLIEST, START_ENQUEUED])
            .default(json!(START_LATEST))
            .describe(
                "Where a partition without a checkpoint starts: the events sent from now on, every event the hub \
                 still holds, or those enqueued after the time below. Once an event is stored the partition \
                 resumes after it.",
            ),
        P::new("startEnqueuedTime", "Enqueued after", K::String)
            .describe("RFC 3339 (2026-12-01T00:00:00Z); with start at `enqueuedTime`."),
        P::new("partitionKeys", "Partition keys", K::List).describe(
            "Only events sent with one of these partition keys are taken; the others are passed over. \
             Empty: every event.",
        ),
        P::new("ownerLevel", "Owner level", K::Number).range(0.0, 9.0e15).describe(
            "An exclusive reader: a receiver with a higher owner level takes the partitions from lower ones, \
             and one with a lower level is refused.",
        ),
    ]);
    props.extend(crate::decode::properties());
    props
}

pub const START_LATEST: &str = "latest";
pub const START_EARLIEST: &str = "earliest";
pub const START_ENQUEUED: &str = "enqueuedTime";

/// Where a partition without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Latest,
    Earliest,
    /// Enqueued after this time (ms).
    EnqueuedAfter(i64),
}

#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub namespace: Namespace,
    pub group: String,
    pub start: Start,
    pub partition_keys: Vec<String>,
    pub owner_level: Option<i64>,
}

fn start(s: &Settings<'_>) -> Result<Start, (String, String)> {
    let undeclared = |e: BuildError| ("properties".to_owned(), e.to_string());
    match s.text("startPosition").map_err(undeclared)?.unwrap_or(START_LATEST) {
        START_EARLIEST => Ok(Start::Earliest),
        START_ENQUEUED => {
            let field = "properties.startEnqueuedTime".to_owned();
            let text = s
                .text("startEnqueuedTime")
                .map_err(undeclared)?
                .ok_or_else(|| (field.clone(), "is required when startPosition is `enqueuedTime`".to_owned()))?;
            let at = crate::decode::epoch_ms(&json!(text))
                .filter(|_| text.contains('T'))
                .ok_or_else(|| (field, format!("`{text}` is not an RFC 3339 time (2026-12-01T00:00:00Z)")))?;
            Ok(Start::EnqueuedAfter(at))
        }
        _ => Ok(Start::Latest),
    }
}

impl IngressConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let specs = ingress_properties();
        let s = Settings::new(&specs, i);
        let config = |(f, e): (String, String)| BuildError::Config(format!("{f} {e}"));
        Ok(Self {
            namespace: namespace(&s).map_err(config)?,
            group: s.text("consumerGroup")?.unwrap_or("$Default").to_owned(),
            start: start(&s).map_err(config)?,
            partition_keys: s.strings("partitionKeys")?,
            owner_level: s.number("ownerLevel")?.map(|n| n as i64),
        })
    }
}

pub fn check_ingress(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = ingress_properties();
    let s = Settings::of_resolved(&specs, resolved);
    let mut errors = ValidationErrors::default();
    for found in [namespace(&s).err(), start(&s).err()].into_iter().flatten() {
        errors.push(found.0, found.1);
    }
    crate::decode::check(resolved, &specs, errors)
}

pub struct EventHubsConfig {
    pub namespace: Namespace,
    pub partition_key: Option<String>,
    pub rate: f64,
}

fn namespace(s: &Settings<'_>) -> Result<Namespace, (String, String)> {
    let undeclared = |e: BuildError| ("properties".to_owned(), e.to_string());
    let conn = s.secret("connectionString").map_err(undeclared)?;
    let policy_key = s.secret("policyKey").map_err(undeclared)?;
    let mut ns = match conn {
        Some(c) => parse_connection_string(c.expose()).map_err(|e| ("properties.connectionString".to_owned(), e))?,
        None => {
            let host = s.text("host").map_err(undeclared)?;
            let name = s.text("policyName").map_err(undeclared)?;
            let (Some(host), Some(name), Some(key)) = (host, name, policy_key) else {
                return Err((
                    "properties.connectionString".into(),
                    "is required, or host, policyName and policyKey".into(),
                ));
            };
            Namespace {
                host: host.to_owned(),
                port: 5671,
                key_name: name.to_owned(),
                key: key.expose().to_owned(),
                hub: String::new(),
                emulator: false,
            }
        }
    };
    if let Some(hub) = s.text("eventHub").map_err(undeclared)? {
        ns.hub = hub.to_owned();
    }
    if ns.hub.is_empty() {
        return Err(("properties.eventHub".into(), "is required (or EntityPath in the connection string)".into()));
    }
    Ok(ns)
}

impl EventHubsConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let specs = properties();
        let s = Settings::new(&specs, i);
        let ns = namespace(&s).map_err(|(f, e)| BuildError::Config(format!("{f} {e}")))?;
        Ok(Self { namespace: ns, partition_key: s.text("partitionKeyTemplate")?.map(str::to_owned), rate: s.rate()? })
    }
}

pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let specs = properties();
    if let Err((field, e)) = namespace(&Settings::of_resolved(&specs, resolved)) {
        errors.push(field, e);
    }
    errors.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_name_the_namespace_the_policy_and_the_hub() {
        let ns = parse_connection_string(
            "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc=;EntityPath=telemetry",
        )
        .unwrap();
        assert_eq!(
            (ns.host.as_str(), ns.port, ns.key_name.as_str(), ns.key.as_str(), ns.hub.as_str(), ns.emulator),
            ("contoso.servicebus.windows.net", 5671, "send", "abc=", "telemetry", false)
        );
        let local = parse_connection_string(
            "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        )
        .unwrap();
        assert_eq!((local.port, local.emulator), (5672, true));
        assert!(parse_connection_string("Endpoint=sb://x/;SharedAccessKeyName=k")
            .unwrap_err()
            .contains("SharedAccessKey"));
    }
}
