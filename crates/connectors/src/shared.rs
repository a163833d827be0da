//! What the cloud, broker and notification connectors share: reading
//! properties, the published-data shape, templates, the objects list and the
//! egress policy for transports other than HTTP.
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P};
use switchyard_core::{IntegrationId, Metadata, Record, Secret};

use crate::egress::{BuildError, Outcome, Response, SendResult};
use crate::policy::EgressPolicy;

/// Messages per second for connection-based types unless `rateLimitPerSecond` says otherwise.
pub const DEFAULT_RATE: f64 = 20.0;

/// An integration's settings, read through its type's declared property
/// specs: the one declaration both the specs (catalog, validation, the
/// console's form) and the typed config come from. Reading a name the specs
/// do not declare is an error (every connector's tests build its config),
/// and a value left unset is the spec's default, so the spec and the config
/// cannot disagree on a name or a default.
pub struct Settings<'a> {
    specs: &'a [P],
    props: &'a Map<String, Value>,
    secrets: &'a std::collections::BTreeMap<String, Secret>,
}

impl<'a> Settings<'a> {
    pub fn new(specs: &'a [P], integration: &'a switchyard_core::Integration) -> Self {
        Self { specs, props: &integration.properties, secrets: &integration.secrets }
    }

    /// Through the specs the registry declares for the integration's type and direction.
    pub fn of(integration: &'a switchyard_core::Integration) -> Result<Self, BuildError> {
        let specs = crate::find(&integration.type_key)
            .and_then(|t| t.direction(integration.direction))
            .map(|d| d.properties.as_slice())
            .ok_or_else(|| BuildError::Config(format!("{} has no such direction", integration.type_key)))?;
        Ok(Self::new(specs, integration))
    }

    /// The same view of a create or an update being validated.
    pub fn of_resolved(specs: &'a [P], resolved: &'a switchyard_core::spec::Resolved) -> Self {
        Self { specs, props: &resolved.properties, secrets: &resolved.secrets }
    }

    /// Whether the type declares the property.
    pub fn declares(&self, name: &str) -> bool {
        self.specs.iter().any(|s| s.name == name)
    }

    fn spec(&self, name: &str) -> Result<&'a P, BuildError> {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| BuildError::Config(format!("`{name}` is not a declared property of this type")))
    }

    /// The value set, else the spec's default.
    fn value(&self, name: &str) -> Result<Option<&'a Value>, BuildError> {
        let spec = self.spec(name)?;
        Ok(self.props.get(name).filter(|v| !v.is_null()).or(spec.default.as_ref()))
    }

    /// A non-empty string.
    pub fn text(&self, name: &str) -> Result<Option<&'a str>, BuildError> {
        Ok(self.value(name)?.and_then(Value::as_str).filter(|s| !s.is_empty()))
    }

    /// A string the type requires (validated at create, so its absence is a stored-state fault).
    pub fn required(&self, name: &str) -> Result<&'a str, BuildError> {
        self.text(name)?.ok_or_else(|| BuildError::Config(format!("{name} is not set")))
    }

    pub fn number(&self, name: &str) -> Result<Option<f64>, BuildError> {
        Ok(self.value(name)?.and_then(Value::as_f64))
    }

    /// A flag; false when neither set nor defaulted.
    pub fn flag(&self, name: &str) -> Result<bool, BuildError> {
        Ok(self.value(name)?.and_then(Value::as_bool).unwrap_or(false))
    }

    /// A list's items as they are.
    pub fn items(&self, name: &str) -> Result<&'a [Value], BuildError> {
        Ok(self.value(name)?.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default())
    }

    /// A list's non-empty strings.
    pub fn strings(&self, name: &str) -> Result<Vec<String>, BuildError> {
        Ok(self
            .value(name)?
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default())
    }

    /// A secret, when set (and not empty).
    pub fn secret(&self, name: &str) -> Result<Option<Secret>, BuildError> {
        self.spec(name)?;
        Ok(self.secrets.get(name).filter(|s| !s.expose().is_empty()).cloned())
    }

    /// A secret the chosen settings require.
    pub fn need_secret(&self, name: &str) -> Result<Secret, BuildError> {
        self.secret(name)?.ok_or_else(|| BuildError::Config(format!("{name} is not set")))
    }

    /// `rateLimitPerSecond`, or the default for connection-based types.
    pub fn rate(&self) -> Result<f64, BuildError> {
        Ok(self.number(RATE)?.filter(|r| *r > 0.0).unwrap_or(DEFAULT_RATE))
    }
}

/// The integration with its templated properties (`PropertySpec::template`)
/// rendered over the organization's globals, as a connection is opened. A
/// global the template names that is not set is an error naming the
/// property. Secret globals render only into secret properties.
pub fn rendered(
    integration: &switchyard_core::Integration,
    globals: &switchyard_core::Globals,
) -> Result<switchyard_core::Integration, BuildError> {
    rendered_except(integration, globals, &[])
}

/// [`rendered`], but for the properties named in `later`, which the type
/// renders itself with more than the globals (a poll's window).
pub fn rendered_except(
    integration: &switchyard_core::Integration,
    globals: &switchyard_core::Globals,
    later: &[&str],
) -> Result<switchyard_core::Integration, BuildError> {
    let specs = crate::find(&integration.type_key)
        .and_then(|t| t.direction(integration.direction))
        .map(|d| d.properties.as_slice())
        .unwrap_or_default();
    let mut out = integration.clone();
    for spec in specs.iter().filter(|s| s.template && !later.contains(&&*s.name)) {
        let name = &*spec.name;
        if let Some(secret) = out.secrets.get_mut(name) {
            *secret = Secret::new(render_global(name, secret.expose(), globals, true)?);
        }
        match out.properties.get_mut(name) {
            Some(Value::String(text)) => *text = render_global(name, text, globals, false)?,
            Some(Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::String(text) = item {
                        *text = render_global(&format!("{name}[{i}]"), text, globals, false)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `secret`: the property is a secret, so secret globals may render into it.
fn render_global(
    name: &str,
    source: &str,
    globals: &switchyard_core::Globals,
    secret: bool,
) -> Result<String, BuildError> {
    if !source.contains("{{") && !source.contains("{%") {
        return Ok(source.to_owned());
    }
    let failed = |e: String| BuildError::Config(format!("{name}: {e}"));
    let mut env = switchyard_core::template::environment(minijinja::UndefinedBehavior::Strict);
    env.add_template("t", source).map_err(|e| failed(e.to_string()))?;
    let template = env.get_template("t").map_err(|e| failed(e.to_string()))?;
    let mut values: Map<String, Value> =
        globals.values.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    if secret {
        values.extend(globals.secrets.iter().map(|(k, v)| (k.clone(), Value::String(v.expose().to_owned()))));
    }
    let text =
        switchyard_core::template::render(&template, json!({ "globals": values })).map_err(|e| {
            match globals.secrets.keys().find(|k| !secret && source.contains(k.as_str())) {
                Some(k) => failed(format!("`{k}` is a secret global: only secret properties may use it")),
                None => failed(format!("{e} (the organization's globals: GET /v2/globals)")),
            }
        })?;
    if text.trim().is_empty() {
        return Err(failed("the template renders empty".into()));
    }
    Ok(text.trim().to_owned())
}

/// A `Name: value` header line, as the `headers` properties take them.
pub fn header_line(line: &str) -> Result<(String, String), String> {
    let (name, value) = line.split_once(':').ok_or("must be `Name: value`")?;
    let (name, value) = (name.trim(), value.trim());
    http::HeaderName::try_from(name).map_err(|_| format!("`{name}` is not a header name"))?;
    http::HeaderValue::try_from(value).map_err(|_| "the value holds characters a header cannot".to_owned())?;
    Ok((name.to_owned(), value.to_owned()))
}

/// Every line of a `headers` list property is `Name: value`; errors name the line.
pub fn check_headers(s: &Settings<'_>, errors: &mut switchyard_core::ValidationErrors) {
    for (i, line) in s.strings("headers").unwrap_or_default().iter().enumerate() {
        if let Err(e) = header_line(line) {
            errors.push(format!("properties.headers[{i}]"), e);
        }
    }
}

/// The rate limit property's name, for its spec and for reading it.
const RATE: &str = "rateLimitPerSecond";

/// The objects property's name: declared once, for its spec and for reading it.
const OBJECTS: &str = "objects";

/// The objects list of cloud integrations: which objects trigger it, on top of its triggers.
pub fn objects_property() -> P {
    P::new(OBJECTS, "Objects", K::List).describe(
        "Which objects (properties) trigger the integration, on top of its triggers; `*` globs allowed. All when empty.",
    )
}

/// An integration's objects list, where it narrows its triggers (none, or
/// `*`, narrows nothing). The engine's router asks this; it never reads the
/// property by name itself.
pub fn objects(integration: &switchyard_core::Integration) -> Option<Vec<String>> {
    let list: Vec<String> = integration
        .properties
        .get(OBJECTS)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    (!list.is_empty() && !list.iter().any(|o| o == "*")).then_some(list)
}

pub fn rate_property() -> P {
    P::new(RATE, "Rate limit (messages/s)", K::Number)
        .range(0.1, 100_000.0)
        .default(json!(DEFAULT_RATE))
        .describe("Sends per second at most; more wait their turn, none is dropped.")
}

/// RFC 3339 in UTC with milliseconds, from ms since the epoch.
pub fn rfc3339(ms: i64) -> String {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// The message a cloud or broker target receives for a record: the fields
/// users of cloud integrations know (`published_at`, `device_id`, `data`,
/// `integration_id`, `sampled_at`, `object`) and the record's others.
/// `delivery_id` is in it too, the same on every retry, so a receiver can
/// deduplicate whatever the transport carries beside the body.
pub fn published(record: &Record, integration: &IntegrationId, delivery_id: &str) -> Value {
    let mut out = Map::new();
    out.insert("delivery_id".into(), json!(delivery_id));
    out.insert("published_at".into(), json!(rfc3339(record.received_at)));
    out.insert("device_id".into(), json!(record.device_id));
    out.insert("data".into(), record.payload.clone());
    out.insert("integration_id".into(), json!(integration));
    out.insert("sampled_at".into(), json!(rfc3339(record.timestamp)));
    out.insert("object".into(), json!(record.property));
    out.insert("kind".into(), json!(record.kind));
    let optional = [
        ("scaled_data", record.scaled_payload.clone()),
        ("name", record.name.clone().map(Value::from)),
        ("unit", record.unit.clone().map(Value::from)),
        ("external_id", record.external_id.clone().map(Value::from)),
        ("property_id", record.property_id.clone().map(Value::from)),
        ("equipment_id", record.equipment_id.clone().map(Value::from)),
        ("gateway_interface_id", record.gateway_interface_id.clone().map(Value::from)),
        ("slug", record.slug.clone().map(Value::from)),
        ("is_out_of_service", record.is_out_of_service.map(Value::from)),
        ("record_id", record.id.clone().map(Value::from)),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            out.insert(name.into(), v);
        }
    }
    if !record.tags.is_empty() {
        out.insert("tags".into(), json!(record.tags));
    }
    Value::Object(out)
}

/// A MiniJinja template compiled once per integration, rendered per record
/// with `record` and the organization's `globals`.
pub struct Template {
    env: minijinja::Environment<'static>,
    globals: minijinja::Value,
    property: &'static str,
}

impl Template {
    /// Strict: an unknown name is an error (a topic or key must not lose a part silently).
    pub fn compile(property: &'static str, source: &str, globals: &Metadata) -> Result<Self, BuildError> {
        Self::with(property, source, globals, minijinja::UndefinedBehavior::Strict)
    }

    /// Lenient, for text people read: an unknown name (a device that no
    /// longer exists, a missing tag) renders empty instead of failing.
    pub fn lenient(property: &'static str, source: &str, globals: &Metadata) -> Result<Self, BuildError> {
        Self::with(property, source, globals, minijinja::UndefinedBehavior::Chainable)
    }

    fn with(
        property: &'static str,
        source: &str,
        globals: &Metadata,
        undefined: minijinja::UndefinedBehavior,
    ) -> Result<Self, BuildError> {
        let mut env = switchyard_core::template::environment(undefined);
        env.add_template_owned(property, source.to_owned())
            .map_err(|e| BuildError::Config(format!("{property}: {e}")))?;
        Ok(Self { env, globals: minijinja::Value::from_serialize(globals), property })
    }

    /// Renders for one record; `extra` adds values beside `record` and `globals`.
    pub fn render(&self, record: &Record, extra: &[(&str, minijinja::Value)]) -> Result<String, String> {
        let template = self.env.get_template(self.property).map_err(|e| e.to_string())?;
        let mut ctx: std::collections::BTreeMap<&str, minijinja::Value> =
            extra.iter().map(|(k, v)| (*k, v.clone())).collect();
        ctx.insert("record", minijinja::Value::from_serialize(record));
        ctx.insert("globals", self.globals.clone());
        switchyard_core::template::render(&template, ctx)
            .map_err(|e| format!("{} could not be rendered: {e}", self.property))
    }
}

/// Resolves `host:port` and refuses it unless every address it resolves to
/// is public or covered by `egress.allow` (for transports other than HTTP,
/// checked before each connect).
pub async fn resolve_allowed(policy: &EgressPolicy, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} could not be resolved: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    for a in &addrs {
        policy.check(a.ip()).map_err(|e| e.to_string())?;
    }
    Ok(addrs)
}

/// Whether an error (or one it wraps) is the far side's certificate being
/// refused: a configuration problem retrying cannot fix.
pub fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(rustls::Error::InvalidCertificate(_)) =
                io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
            {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// A result with no response from the far side.
pub fn failed(target: &str, outcome: Outcome) -> SendResult {
    SendResult { sent: None, outcome, response: Response::default(), target: target.to_owned() }
}

pub fn retry(target: &str, reason: impl Into<String>) -> SendResult {
    failed(target, Outcome::Retry { after: None, reason: reason.into() })
}

pub fn reject(target: &str, reason: impl Into<String>) -> SendResult {
    failed(target, Outcome::Reject { reason: reason.into(), deactivate: false })
}

pub fn delivered(target: &str, remote_id: Option<String>) -> SendResult {
    SendResult {
        sent: None,
        outcome: Outcome::Delivered,
        response: Response { status: None, remote_id, excerpt: None },
        target: target.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_data_has_the_cloud_fields() {
        let record: Record = serde_json::from_value(json!({
            "kind": "value", "deviceId": "dev_01j0000000000000000000000a", "property": "adc_vbterm", "timestamp": 1656404429000i64,
            "payload": 12.117188, "receivedAt": 1656404429502i64, "unit": "V", "tags": {"slave": "PS-PWM-30M"}
        }))
        .unwrap();
        let id = IntegrationId::from_stored("int_1".into());
        let p = published(&record, &id, "dlv_1");
        assert_eq!(p["delivery_id"], "dlv_1");
        assert_eq!(p["published_at"], "2022-06-28T08:20:29.502Z");
        assert_eq!(p["sampled_at"], "2022-06-28T08:20:29.000Z");
        assert_eq!(p["device_id"], "dev_01j0000000000000000000000a");
        assert_eq!(p["data"], 12.117188);
        assert_eq!(p["integration_id"], "int_1");
        assert_eq!(p["object"], "adc_vbterm");
        assert_eq!(p["unit"], "V");
        assert_eq!(p["tags"]["slave"], "PS-PWM-30M");
        assert!(p.get("name").is_none(), "absent fields stay absent");
    }

    #[test]
    fn settings_read_only_declared_properties_and_fall_back_to_their_defaults() {
        let specs = vec![
            P::new("host", "Host", K::String).required(),
            P::new("timeoutSeconds", "Timeout", K::Number).default(json!(15)),
            P::new("tls", "TLS", K::Bool).default(json!(true)),
            P::new("password", "Password", K::Secret),
        ];
        let resolved = switchyard_core::spec::Resolved {
            properties: [("host".to_owned(), json!("broker.test"))].into_iter().collect(),
            secrets: [("password".to_owned(), Secret::new("pw"))].into(),
            resources: vec![],
        };
        let s = Settings::of_resolved(&specs, &resolved);
        assert_eq!(s.required("host").unwrap(), "broker.test");
        assert_eq!(s.number("timeoutSeconds").unwrap(), Some(15.0), "the spec's default");
        assert!(s.flag("tls").unwrap());
        assert_eq!(s.secret("password").unwrap().unwrap().expose(), "pw");
        let undeclared = s.text("hots").unwrap_err().to_string();
        assert!(undeclared.contains("`hots` is not a declared property"), "{undeclared}");
        assert!(s.secret("token").is_err(), "secrets too must be declared");
    }

    #[test]
    fn an_objects_list_narrows_unless_empty_or_a_star() {
        let integration = |objects: Option<Value>| switchyard_core::Integration {
            id: IntegrationId::new(),
            org_id: switchyard_core::OrgId::new(),
            name: "n".into(),
            type_key: "MQTT".into(),
            direction: switchyard_core::Direction::Egress,
            enabled: true,
            properties: objects.map(|o| [("objects".to_owned(), o)].into_iter().collect()).unwrap_or_default(),
            secrets: Default::default(),
            metadata: Default::default(),
            resource_paths: vec![],
            created_at: 0,
            updated_at: 0,
        };
        let with = |v: Value| objects(&integration(Some(v)));
        assert_eq!(with(json!(["power", "", "temp_*"])), Some(vec!["power".to_owned(), "temp_*".to_owned()]));
        assert_eq!(with(json!([])), None);
        assert_eq!(with(json!(["power", "*"])), None);
        assert_eq!(objects(&integration(None)), None);
    }

    #[test]
    fn templates_see_the_record_and_globals_and_refuse_unknown_names() {
        let record: Record = serde_json::from_value(json!({
            "kind": "alarm", "deviceId": "dev_01j0000000000000000000000b", "property": "door", "timestamp": 1, "payload": true, "receivedAt": 1
        }))
        .unwrap();
        let globals: Metadata = serde_json::from_value(json!({"site": "north"})).unwrap();
        let t = Template::compile(
            "topicTemplate",
            "{{ globals.site }}/{{ record.deviceId }}/{{ record.property }}",
            &globals,
        )
        .unwrap();
        assert_eq!(t.render(&record, &[]).unwrap(), "north/dev_01j0000000000000000000000b/door");
        let t = Template::compile("topicTemplate", "{{ record.nope }}", &globals).unwrap();
        assert!(t.render(&record, &[]).unwrap_err().contains("topicTemplate"));
    }
}
