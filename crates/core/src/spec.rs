//! Property specs: what each integration type accepts, and the one validator
//! that checks a create or an update against them. The API, the CLI and the
//! console all read the same specs, so they cannot disagree.
use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{ResourcePath, ResourceType, Secret, ValidationErrors};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PropertyKind {
    String,
    Number,
    Bool,
    Enum,
    Url,
    Email,
    Phone,
    Secret,
    Template,
    List,
    Resource,
}

/// "This property is required when `property` has one of `equals`."
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[schema(value_type = String)]
    pub property: Text,
    #[schema(value_type = Vec<String>)]
    pub equals: Vec<Text>,
}

/// A spec's text: written in the code for built-in types, read from data
/// for types an organization publishes (custom definitions).
pub type Text = Cow<'static, str>;

fn texts(items: &[&'static str]) -> Vec<Text> {
    items.iter().map(|s| Cow::Borrowed(*s)).collect()
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropertySpec {
    #[schema(value_type = String)]
    pub name: Text,
    #[schema(value_type = String)]
    pub label: Text,
    pub kind: PropertyKind,
    pub required: bool,
    /// Whether the value may be changed after the integration is created.
    pub editable: bool,
    /// Secret values are encrypted at rest and never returned.
    pub secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<ResourceType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[schema(value_type = String)]
    pub description: Text,
    /// Allowed values of an `enum`; allowed schemes of a `url`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub options: Vec<Text>,
    /// The kind of each item of a `list`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_kind: Option<PropertyKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_when: Option<Condition>,
    /// The value (each item of a list) may be a template over the
    /// organization's globals (`{{ globals.broker }}`), rendered at connect.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
}

const STRING_MAX: usize = 4096;
const SECRET_MAX: usize = 65536;
const LIST_MAX: usize = 256;
const DEFAULT_URL_SCHEMES: &[&str] = &["http", "https"];

impl PropertySpec {
    pub fn new(name: impl Into<Text>, label: impl Into<Text>, kind: PropertyKind) -> Self {
        Self {
            name: name.into(),
            label: label.into(),
            kind,
            required: false,
            editable: true,
            secret: kind == PropertyKind::Secret,
            resource_type: None,
            default: None,
            description: Cow::Borrowed(""),
            options: vec![],
            item_kind: (kind == PropertyKind::List).then_some(PropertyKind::String),
            min: None,
            max: None,
            required_when: None,
            template: false,
        }
    }
    /// Accepts a template over the globals (a string, or a list's items).
    pub fn templated(mut self) -> Self {
        self.template = true;
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Set once at create; refused on update.
    pub fn fixed(mut self) -> Self {
        self.editable = false;
        self
    }
    pub fn describe(mut self, text: impl Into<Text>) -> Self {
        self.description = text.into();
        self
    }
    pub fn default(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }
    pub fn options(mut self, options: &[&'static str]) -> Self {
        self.options = texts(options);
        self
    }
    pub fn items(mut self, kind: PropertyKind) -> Self {
        self.item_kind = Some(kind);
        self
    }
    pub fn range(mut self, min: f64, max: f64) -> Self {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
    pub fn resource(mut self, resource_type: ResourceType) -> Self {
        self.resource_type = Some(resource_type);
        self
    }
    pub fn required_when(mut self, property: &'static str, equals: &[&'static str]) -> Self {
        self.required_when = Some(Condition { property: Cow::Borrowed(property), equals: texts(equals) });
        self
    }

    fn is_required(&self, props: &Map<String, Value>) -> bool {
        self.required
            || self.required_when.as_ref().is_some_and(|c| {
                props.get(&*c.property).and_then(Value::as_str).is_some_and(|v| c.equals.iter().any(|e| e == v))
            })
    }
}

/// A resource named by a property, to be checked for existence by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRef {
    pub field: String,
    pub path: ResourcePath,
}

/// The outcome of validating a create or an update: the full new state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub properties: Map<String, Value>,
    pub secrets: BTreeMap<String, Secret>,
    pub resources: Vec<ResourceRef>,
}

/// Checks the properties of a new integration, filling in defaults.
pub fn validate_create(specs: &[PropertySpec], input: &Map<String, Value>) -> Result<Resolved, ValidationErrors> {
    apply(specs, Resolved::default(), input, false)
}

/// Checks a partial update against the current state: given keys replace,
/// `null` clears, omitted keys (secrets included) are kept.
pub fn validate_update(
    specs: &[PropertySpec],
    current: Resolved,
    patch: &Map<String, Value>,
) -> Result<Resolved, ValidationErrors> {
    apply(specs, current, patch, true)
}

fn apply(
    specs: &[PropertySpec],
    mut state: Resolved,
    input: &Map<String, Value>,
    is_update: bool,
) -> Result<Resolved, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    for (name, value) in input {
        let field = format!("properties.{name}");
        let Some(spec) = specs.iter().find(|s| *s.name == **name) else {
            let known: Vec<&str> = specs.iter().map(|s| &*s.name).collect();
            errors.push(field, format!("unknown property; this type accepts: {}", known.join(", ")));
            continue;
        };
        if is_update && !spec.editable && !unchanged(spec, &state, value) {
            errors.push(field, "cannot be changed after the integration is created");
            continue;
        }
        if value.is_null() {
            state.properties.remove(name);
            state.secrets.remove(name);
            continue;
        }
        match check_value(spec, spec.kind, value) {
            Ok(v) if spec.secret => {
                state.secrets.insert(name.clone(), Secret::new(v.as_str().unwrap_or_default()));
            }
            Ok(v) => {
                state.properties.insert(name.clone(), v);
            }
            Err(message) => errors.push(field, message),
        }
    }
    if !is_update {
        for spec in specs.iter().filter(|s| !s.secret) {
            if let (Some(default), None) = (&spec.default, state.properties.get(&*spec.name)) {
                state.properties.insert(spec.name.to_string(), default.clone());
            }
        }
    }
    for spec in specs {
        let present = state.properties.contains_key(&*spec.name) || state.secrets.contains_key(&*spec.name);
        if !present
            && spec.is_required(&state.properties)
            && !errors.0.iter().any(|e| e.field.strip_prefix("properties.") == Some(&*spec.name))
        {
            let why = match &spec.required_when {
                Some(c) if !spec.required => format!("is required when {} is {}", c.property, c.equals.join(" or ")),
                _ => "is required".to_owned(),
            };
            errors.push(format!("properties.{}", spec.name), why);
        }
    }
    errors.into_result()?;
    state.resources = specs
        .iter()
        .filter(|s| s.kind == PropertyKind::Resource)
        .filter_map(|s| {
            let path = ResourcePath::parse(state.properties.get(&*s.name)?.as_str()?).ok()?;
            Some(ResourceRef { field: format!("properties.{}", s.name), path })
        })
        .collect();
    Ok(state)
}

fn unchanged(spec: &PropertySpec, state: &Resolved, value: &Value) -> bool {
    if spec.secret {
        match (state.secrets.get(&*spec.name), value) {
            (Some(current), Value::String(new)) => current.expose() == new,
            (None, Value::Null) => true,
            _ => false,
        }
    } else {
        state.properties.get(&*spec.name).unwrap_or(&Value::Null) == value
    }
}

/// Checks one value against a kind; returns it normalised, or why it is wrong.
fn check_value(spec: &PropertySpec, kind: PropertyKind, value: &Value) -> Result<Value, String> {
    let text = || value.as_str().ok_or_else(|| "must be a string".to_owned());
    let bounded = |s: &str, max: usize| {
        if s.trim().is_empty() {
            Err("must not be empty".to_owned())
        } else if s.len() > max {
            Err(format!("must be at most {max} bytes"))
        } else {
            Ok(Value::String(s.to_owned()))
        }
    };
    if spec.template {
        if let Some(source) = value.as_str().filter(|s| s.contains("{{") || s.contains("{%")) {
            crate::template::check(source, &crate::template::sample_context())?;
            // What it renders to is checked as it is rendered, at connect (a URL's syntax, say).
            let max = if kind == PropertyKind::Secret { SECRET_MAX } else { STRING_MAX };
            return bounded(source, max);
        }
    }
    match kind {
        PropertyKind::String => bounded(text()?, STRING_MAX),
        PropertyKind::Secret => bounded(text()?, SECRET_MAX),
        PropertyKind::Template => {
            let s = text()?;
            crate::template::check(s, &crate::template::sample_context())?;
            bounded(s, SECRET_MAX)
        }
        PropertyKind::Number => {
            let n = value.as_f64().ok_or_else(|| "must be a number".to_owned())?;
            match (spec.min, spec.max) {
                (Some(min), _) if n < min => Err(format!("must be at least {min}")),
                (_, Some(max)) if n > max => Err(format!("must be at most {max}")),
                _ => Ok(value.clone()),
            }
        }
        PropertyKind::Bool => value.as_bool().map(Value::Bool).ok_or_else(|| "must be true or false".to_owned()),
        PropertyKind::Enum => {
            let s = text()?;
            if spec.options.iter().any(|o| o == s) {
                Ok(value.clone())
            } else {
                Err(format!("must be one of: {}", spec.options.join(", ")))
            }
        }
        PropertyKind::Url => {
            let s = text()?;
            let schemes: Vec<&str> = if spec.options.is_empty() {
                DEFAULT_URL_SCHEMES.to_vec()
            } else {
                spec.options.iter().map(|o| &**o).collect()
            };
            let url = url::Url::parse(s).map_err(|e| format!("is not a valid URL: {e}"))?;
            if !schemes.contains(&url.scheme()) {
                return Err(format!("must be a URL with scheme {}", schemes.join(", ")));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err("must be a URL with a host".to_owned());
            }
            bounded(s, STRING_MAX)
        }
        PropertyKind::Email => {
            let s = text()?;
            if is_email(s) {
                Ok(value.clone())
            } else {
                Err("must be an e-mail address (name@example.com)".to_owned())
            }
        }
        PropertyKind::Phone => {
            let s = text()?;
            if is_e164(s) {
                Ok(value.clone())
            } else {
                Err("must be a phone number in E.164 form (+ then country code and number, e.g. +14155550123)"
                    .to_owned())
            }
        }
        PropertyKind::List => {
            let items = value.as_array().ok_or_else(|| "must be a list".to_owned())?;
            if items.len() > LIST_MAX {
                return Err(format!("must have at most {LIST_MAX} items"));
            }
            let item_kind = spec.item_kind.unwrap_or(PropertyKind::String);
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(check_value(spec, item_kind, item).map_err(|e| format!("item {i} {e}"))?);
            }
            Ok(Value::Array(out))
        }
        PropertyKind::Resource => {
            let path = ResourcePath::parse(text()?)?;
            match (spec.resource_type, path.resource_type()) {
                (_, None) => Err("must name a Place or a device, not the root".to_owned()),
                (Some(want), Some(got)) if want != got => Err(format!("must name a {}", want.as_str())),
                _ => Ok(Value::String(path.to_string())),
            }
        }
    }
}

/// A pragmatic address check: one `@`, a non-empty local part without spaces,
/// and a dotted domain of letters, digits and hyphens.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains(['@', ' ', '\t', '"', '<', '>', ',', ';'])
        && !local.starts_with('.')
        && !local.ends_with('.');
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}

/// E.164: `+`, a country code not starting with 0, 8 to 15 digits in all.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else { return false };
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs() -> Vec<PropertySpec> {
        vec![
            PropertySpec::new("url", "URL", PropertyKind::Url).required(),
            PropertySpec::new("method", "Method", PropertyKind::Enum).options(&["POST", "PUT"]).default(json!("POST")),
            PropertySpec::new("auth", "Auth", PropertyKind::Enum).options(&["NONE", "BASIC"]).default(json!("NONE")),
            PropertySpec::new("password", "Password", PropertyKind::Secret).required_when("auth", &["BASIC"]),
            PropertySpec::new("region", "Region", PropertyKind::String).fixed(),
            PropertySpec::new("to", "To", PropertyKind::List).items(PropertyKind::Phone),
            PropertySpec::new("timeout", "Timeout", PropertyKind::Number).range(1.0, 60.0),
            PropertySpec::new("device", "Device", PropertyKind::Resource).resource(ResourceType::Device),
            PropertySpec::new("body", "Body", PropertyKind::Template),
        ]
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn fields(e: ValidationErrors) -> Vec<String> {
        e.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn create_fills_defaults_and_splits_secrets() {
        let r = validate_create(&specs(), &obj(json!({"url": "https://x.test/in", "auth": "BASIC", "password": "pw"})))
            .unwrap();
        assert_eq!(r.properties["method"], "POST");
        assert!(!r.properties.contains_key("password"));
        assert_eq!(r.secrets["password"].expose(), "pw");
    }

    #[test]
    fn create_names_every_bad_field() {
        let e = validate_create(
            &specs(),
            &obj(json!({"url": "ftp://x", "method": "GET", "to": ["+1415555012", "555"], "timeout": 99,
                        "nope": 1, "body": "{{ unclosed", "device": "/places/plc_01j00000000000000000000000"})),
        )
        .unwrap_err();
        let mut f = fields(e);
        f.sort();
        assert_eq!(
            f,
            [
                "properties.body",
                "properties.device",
                "properties.method",
                "properties.nope",
                "properties.timeout",
                "properties.to",
                "properties.url"
            ]
        );
    }

    #[test]
    fn conditional_requirement_is_explained() {
        let e = validate_create(&specs(), &obj(json!({"url": "https://x.test", "auth": "BASIC"}))).unwrap_err();
        assert_eq!(e.0[0].field, "properties.password");
        assert!(e.0[0].message.contains("when auth is BASIC"), "{}", e.0[0].message);
    }

    #[test]
    fn update_keeps_omitted_secrets_and_clears_on_null() {
        let specs = specs();
        let current =
            validate_create(&specs, &obj(json!({"url": "https://x.test", "password": "pw", "region": "eu"}))).unwrap();
        let kept = validate_update(&specs, current.clone(), &obj(json!({"method": "PUT"}))).unwrap();
        assert_eq!(kept.secrets["password"].expose(), "pw");
        assert_eq!(kept.properties["method"], "PUT");
        let cleared = validate_update(&specs, current.clone(), &obj(json!({"password": null}))).unwrap();
        assert!(cleared.secrets.is_empty());
        let e = validate_update(&specs, current.clone(), &obj(json!({"region": "us"}))).unwrap_err();
        assert_eq!(fields(e), ["properties.region"]);
        assert!(validate_update(&specs, current, &obj(json!({"region": "eu"}))).is_ok(), "same value is not a change");
    }

    #[test]
    fn resource_properties_are_collected_for_existence_checks() {
        let path = format!("/places/{}/devices/{}", crate::PlaceId::new(), crate::DeviceId::new());
        let r = validate_create(&specs(), &obj(json!({"url": "https://x.test", "device": path}))).unwrap();
        assert_eq!(r.resources.len(), 1);
        assert_eq!(r.resources[0].field, "properties.device");
    }

    #[test]
    fn emails_and_phones() {
        assert!(is_email("ops@example.com") && is_email("a.b+c@sub.example.io"));
        assert!(!is_email("ops@") && !is_email("no at") && !is_email("a@b") && !is_email("a b@x.io"));
        assert!(is_e164("+14155550123") && !is_e164("14155550123") && !is_e164("+0123456789") && !is_e164("+1-415"));
    }
}
