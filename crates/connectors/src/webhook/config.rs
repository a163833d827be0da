use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde_json::{json, Value};
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, RecordKind, Secret, ValidationErrors};

use super::sign::{generate_secret, SigningKey};
use crate::egress::BuildError;
use crate::shared::text;

/// The webhook's properties. Delivery reads the same names.
pub fn properties() -> Vec<P> {
    const WITH_CREDENTIALS: &[&str] = &["BASIC", "DIGEST"];
    vec![
        P::new("url", "Base URL", K::Url)
            .required()
            .describe("Where records are sent; routes per kind are appended to it."),
        P::new("valuesRoute", "Values route", K::String)
            .describe("Path appended to the base URL for values, e.g. /values."),
        P::new("eventsRoute", "Events route", K::String).describe("Path appended to the base URL for events."),
        P::new("alarmsRoute", "Alarms route", K::String).describe("Path appended to the base URL for alarms."),
        P::new("method", "HTTP method", K::Enum).options(&["POST", "PUT", "PATCH"]).default(json!("POST")),
        P::new("headers", "Extra headers", K::List).describe("Headers added to every request, each as `Name: value`."),
        P::new("timeoutSeconds", "Request timeout (s)", K::Number).range(1.0, 120.0).default(json!(15)),
        P::new("batchSize", "Records per request", K::Number)
            .range(1.0, 1000.0)
            .default(json!(1))
            .describe("1 sends one record per request; more sends a JSON array of records of one kind."),
        P::new("batchLingerMs", "Batch linger (ms)", K::Number)
            .range(0.0, 10000.0)
            .default(json!(0))
            .describe("How long to wait for a batch to fill before sending what there is."),
        P::new("bodyTemplate", "Body template", K::Template).describe(
            "Renders the request body (JSON) from `record` and the organization's `globals`, e.g. \
             {\"site\": \"{{ globals.site }}\", \"value\": {{ record.payload | tojson }}}; the record's JSON when empty.",
        ),
        P::new("secret", "Signing secret", K::Secret)
            .describe("`whsec_` secret for the `webhook-signature` header; generated and shown once when not given."),
        P::new("authType", "Authentication", K::Enum)
            .options(&["NONE", "BASIC", "DIGEST", "BEARER"])
            .default(json!("NONE")),
        P::new("username", "Username", K::String).required_when("authType", WITH_CREDENTIALS),
        P::new("password", "Password", K::Secret).required_when("authType", WITH_CREDENTIALS),
        P::new("token", "Bearer token", K::Secret).required_when("authType", &["BEARER"]),
        P::new("rateLimitPerSecond", "Rate limit (per second)", K::Number)
            .range(0.1, 100000.0)
            .describe("Requests per second at most; excess is delayed, never dropped. Unlimited when empty."),
    ]
}

/// The webhook's settings, read from a validated integration.
pub struct WebhookConfig {
    pub url: String,
    pub routes: Vec<(RecordKind, String)>,
    pub method: http::Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    pub keys: Vec<SigningKey>,
    pub auth: Auth,
    pub rate_limit: Option<f64>,
    /// Renders the body from `record` and `globals` instead of sending the record's JSON.
    pub body_template: Option<String>,
    /// Records per request and how long to wait for a batch to fill (batchSize > 1).
    pub batch: Option<(usize, Duration)>,
}

pub enum Auth {
    None,
    Basic { username: String, password: Secret },
    Digest { username: String, password: Secret },
    Bearer(Secret),
}

/// `Name: value` lines as header pairs.
pub fn parse_headers(lines: &[Value]) -> Result<Vec<(HeaderName, HeaderValue)>, (usize, String)> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let line = line.as_str().unwrap_or_default();
            let (name, value) = line.split_once(':').ok_or((i, "must be `Name: value`".to_owned()))?;
            let name = HeaderName::try_from(name.trim())
                .map_err(|_| (i, format!("`{}` is not a header name", name.trim())))?;
            if RESERVED.contains(&name.as_str()) {
                return Err((i, format!("`{name}` is set by Switchyard")));
            }
            let value = HeaderValue::try_from(value.trim())
                .map_err(|_| (i, "the value has characters a header cannot carry".to_owned()))?;
            Ok((name, value))
        })
        .collect()
}

const RESERVED: &[&str] =
    &["content-type", "content-length", "host", "webhook-id", "webhook-timestamp", "webhook-signature"];

impl WebhookConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let p = &i.properties;
        let bad = |m: String| BuildError::Config(m);
        let url = text(p, "url").ok_or_else(|| bad("url is not set".into()))?.to_owned();
        let routes = [
            (RecordKind::Value, "valuesRoute"),
            (RecordKind::Event, "eventsRoute"),
            (RecordKind::Alarm, "alarmsRoute"),
        ]
        .into_iter()
        .filter_map(|(k, name)| Some((k, text(p, name)?.to_owned())))
        .collect();
        let method =
            http::Method::from_bytes(text(p, "method").unwrap_or("POST").as_bytes()).map_err(|e| bad(e.to_string()))?;
        let headers = parse_headers(p.get("headers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default())
            .map_err(|(i, e)| bad(format!("headers[{i}] {e}")))?;
        let timeout = Duration::from_secs_f64(p.get("timeoutSeconds").and_then(Value::as_f64).unwrap_or(15.0));
        let keys = signing_keys(&i.secrets, switchyard_core::now_ms()).map_err(|e| bad(format!("secret {e}")))?;
        let username = text(p, "username").unwrap_or_default().to_owned();
        let secret = |name: &str| i.secrets.get(name).cloned().ok_or_else(|| bad(format!("{name} is not set")));
        let auth = match text(p, "authType").unwrap_or("NONE") {
            "BASIC" => Auth::Basic { username, password: secret("password")? },
            "DIGEST" => Auth::Digest { username, password: secret("password")? },
            "BEARER" => Auth::Bearer(secret("token")?),
            _ => Auth::None,
        };
        let rate_limit = p.get("rateLimitPerSecond").and_then(Value::as_f64).filter(|r| *r > 0.0);
        let body_template = text(p, "bodyTemplate").map(str::to_owned);
        let size = p.get("batchSize").and_then(Value::as_u64).unwrap_or(1) as usize;
        let linger = Duration::from_millis(p.get("batchLingerMs").and_then(Value::as_u64).unwrap_or(0));
        let batch = (size > 1).then_some((size, linger));
        Ok(Self { url, routes, method, headers, timeout, keys, auth, rate_limit, body_template, batch })
    }

    /// The base URL with the route for the record's kind appended.
    pub fn url_for(&self, kind: RecordKind) -> String {
        match self.routes.iter().find(|(k, _)| *k == kind) {
            Some((_, route)) => format!("{}/{}", self.url.trim_end_matches('/'), route.trim_start_matches('/')),
            None => self.url.clone(),
        }
    }
}

/// Checks the specs cannot express: header lines and the secret's form.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if let Some(lines) = resolved.properties.get("headers").and_then(Value::as_array) {
        if let Err((i, e)) = parse_headers(lines) {
            errors.push(format!("properties.headers[{i}]"), e);
        }
    }
    for name in ["valuesRoute", "eventsRoute", "alarmsRoute"] {
        let Some(route) = resolved.properties.get(name).and_then(Value::as_str) else { continue };
        if route.chars().any(|c| c.is_control() || c.is_whitespace()) {
            errors.push(format!("properties.{name}"), "must be a path, without spaces or control characters (CR, LF…)");
        } else if route.contains(['?', '#']) {
            errors.push(format!("properties.{name}"), "must be a path only (no query or fragment)");
        }
    }
    for name in ["batchSize", "batchLingerMs"] {
        if resolved.properties.get(name).and_then(Value::as_f64).is_some_and(|n| n.fract() != 0.0) {
            errors.push(format!("properties.{name}"), "must be a whole number");
        }
    }
    if let Some(secret) = resolved.secrets.get("secret") {
        if let Err(e) = SigningKey::parse(secret.expose()) {
            errors.push("properties.secret", e);
        }
    }
    errors.into_result()
}

/// Where the replaced signing secret is kept while it still signs: the secret,
/// `|`, and the time (ms) it stops.
pub const PREVIOUS_SECRET: &str = "previousSecret";

/// How long a replaced signing secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// At update: a replaced signing secret keeps signing for 24 h, so receivers
/// can switch to the new one without dropping a message.
pub fn rotate(before: &Resolved, after: &mut Resolved, now: i64) {
    if let (Some(old), Some(new)) = (before.secrets.get("secret"), after.secrets.get("secret")) {
        if old.expose() != new.expose() {
            let value = format!("{}|{}", old.expose(), now + ROTATION_OVERLAP_MS);
            after.secrets.insert(PREVIOUS_SECRET.into(), Secret::new(value));
        }
    }
}

/// The keys that sign now: the current secret, and the previous one until it expires.
pub fn signing_keys(secrets: &std::collections::BTreeMap<String, Secret>, now: i64) -> Result<Vec<SigningKey>, String> {
    let mut keys = Vec::new();
    if let Some(current) = secrets.get("secret") {
        keys.push(SigningKey::parse(current.expose())?);
    }
    if let Some((old, until)) = secrets.get(PREVIOUS_SECRET).and_then(|p| p.expose().rsplit_once('|')) {
        if until.parse::<i64>().is_ok_and(|t| now < t) {
            keys.extend(SigningKey::parse(old).ok());
        }
    }
    Ok(keys)
}

/// At create: a signing secret is generated when none is given, and shown once.
pub fn prepare(resolved: &mut Resolved) -> Vec<(&'static str, String)> {
    if resolved.secrets.contains_key("secret") {
        return vec![];
    }
    let secret = generate_secret();
    resolved.secrets.insert("secret".into(), Secret::new(secret.clone()));
    vec![("secret", secret)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_secret_signs_for_24_hours() {
        let (a, b) = (generate_secret(), generate_secret());
        let before = Resolved { secrets: [("secret".to_owned(), Secret::new(a.clone()))].into(), ..Default::default() };
        let mut after = Resolved { secrets: [("secret".to_owned(), Secret::new(b))].into(), ..Default::default() };
        rotate(&before, &mut after, 1_000);
        assert_eq!(signing_keys(&after.secrets, 1_000).unwrap().len(), 2, "both sign during the overlap");
        assert_eq!(signing_keys(&after.secrets, 1_000 + ROTATION_OVERLAP_MS - 1).unwrap().len(), 2);
        assert_eq!(
            signing_keys(&after.secrets, 1_000 + ROTATION_OVERLAP_MS).unwrap().len(),
            1,
            "then only the new one"
        );
        let mut same = before.clone();
        rotate(&before, &mut same, 1_000);
        assert!(!same.secrets.contains_key(PREVIOUS_SECRET), "an unchanged secret is not a rotation");
    }

    #[test]
    fn header_lines_are_checked() {
        let ok = [Value::from("X-Team: ops")];
        assert_eq!(parse_headers(&ok).unwrap().len(), 1);
        assert!(parse_headers(&[Value::from("no colon")]).is_err());
        assert!(parse_headers(&[Value::from("Content-Type: text/plain")]).unwrap_err().1.contains("set by Switchyard"));
        assert!(parse_headers(&[Value::from("Bad Name: x")]).is_err());
    }
}
