use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde_json::{json, Value};
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, RecordKind, Secret, ValidationErrors};

use super::sign::{generate_secret, SigningKey};
use crate::egress::BuildError;
use crate::shared::Settings;

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
        P::new(SECRET, "Signing secret", K::Secret)
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

/// The per-kind route properties.
const ROUTES: [(RecordKind, &str); 3] =
    [(RecordKind::Value, "valuesRoute"), (RecordKind::Event, "eventsRoute"), (RecordKind::Alarm, "alarmsRoute")];

impl WebhookConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let specs = properties();
        let s = Settings::new(&specs, i);
        let bad = |m: String| BuildError::Config(m);
        let url = s.required("url")?.to_owned();
        let mut routes = Vec::new();
        for (kind, name) in ROUTES {
            if let Some(route) = s.text(name)? {
                routes.push((kind, route.to_owned()));
            }
        }
        let method = http::Method::from_bytes(s.required("method")?.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let headers = parse_headers(s.items("headers")?).map_err(|(i, e)| bad(format!("headers[{i}] {e}")))?;
        let timeout = Duration::from_secs_f64(s.number("timeoutSeconds")?.unwrap_or(15.0));
        let keys = signing_keys(&i.secrets, switchyard_core::now_ms()).map_err(|e| bad(format!("secret {e}")))?;
        let username = s.text("username")?.unwrap_or_default().to_owned();
        let auth = match s.required("authType")? {
            "BASIC" => Auth::Basic { username, password: s.need_secret("password")? },
            "DIGEST" => Auth::Digest { username, password: s.need_secret("password")? },
            "BEARER" => Auth::Bearer(s.need_secret("token")?),
            _ => Auth::None,
        };
        let rate_limit = s.number("rateLimitPerSecond")?.filter(|r| *r > 0.0);
        let body_template = s.text("bodyTemplate")?.map(str::to_owned);
        let size = s.number("batchSize")?.unwrap_or(1.0) as usize;
        let linger = Duration::from_millis(s.number("batchLingerMs")?.unwrap_or(0.0) as u64);
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
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    if let Err((i, e)) = parse_headers(s.items("headers").unwrap_or_default()) {
        errors.push(format!("properties.headers[{i}]"), e);
    }
    for (_, name) in ROUTES {
        let Some(route) = s.text(name).ok().flatten() else { continue };
        if route.chars().any(|c| c.is_control() || c.is_whitespace()) {
            errors.push(format!("properties.{name}"), "must be a path, without spaces or control characters (CR, LF…)");
        } else if route.contains(['?', '#']) {
            errors.push(format!("properties.{name}"), "must be a path only (no query or fragment)");
        }
    }
    for name in ["batchSize", "batchLingerMs"] {
        if s.number(name).ok().flatten().is_some_and(|n| n.fract() != 0.0) {
            errors.push(format!("properties.{name}"), "must be a whole number");
        }
    }
    if let Some(secret) = s.secret(SECRET).ok().flatten() {
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

/// The signing secret's property (generated when not given).
const SECRET: &str = "secret";

/// At update: a replaced signing secret keeps signing for 24 h, so receivers
/// can switch to the new one without dropping a message.
pub fn rotate(before: &Resolved, after: &mut Resolved, now: i64) {
    if let (Some(old), Some(new)) = (before.secrets.get(SECRET), after.secrets.get(SECRET)) {
        if old.expose() != new.expose() {
            let value = format!("{}|{}", old.expose(), now + ROTATION_OVERLAP_MS);
            after.secrets.insert(PREVIOUS_SECRET.into(), Secret::new(value));
        }
    }
}

/// The keys that sign now: the current secret, and the previous one until it expires.
pub fn signing_keys(secrets: &std::collections::BTreeMap<String, Secret>, now: i64) -> Result<Vec<SigningKey>, String> {
    let mut keys = Vec::new();
    if let Some(current) = secrets.get(SECRET) {
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
    if resolved.secrets.contains_key(SECRET) {
        return vec![];
    }
    let secret = generate_secret();
    resolved.secrets.insert(SECRET.into(), Secret::new(secret.clone()));
    vec![(SECRET, secret)]
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
