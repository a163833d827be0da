//! HTTP inbound's properties and the settings read from them.
use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::decode::Format;
use crate::egress::BuildError;
use crate::shared::Settings;
use crate::webhook::sign::{generate_secret, SigningKey};

const AUTH: &str = "authMethod";
const TOKEN: &str = "token";
const TOKEN_HEADER: &str = "tokenHeader";
const SIGNING_SECRET: &str = "signingSecret";
const SIGNATURE_HEADER: &str = "signatureHeader";
const SIGNATURE_PREFIX: &str = "signaturePrefix";
const SIGNATURE_ENCODING: &str = "signatureEncoding";
const TOLERANCE: &str = "toleranceSeconds";
const MAX_BODY: &str = "maxBodyBytes";

/// The largest body an integration may take (the API's own body limit).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn properties() -> Vec<P> {
    let mut own = vec![
        P::new(AUTH, "Authentication", K::Enum)
            .options(&["TOKEN", "STANDARD_WEBHOOKS", "HMAC_SHA256"])
            .default(json!("TOKEN"))
            .describe(
                "TOKEN: callers send the shared token; STANDARD_WEBHOOKS: callers sign each request \
                 (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with a `whsec_` secret; HMAC_SHA256: \
                 callers send an HMAC-SHA256 of the body in a header (`X-Hub-Signature-256: sha256=…`).",
            ),
        P::new(TOKEN, "Shared token", K::Secret).templated().describe(
            "TOKEN: what callers present, as `Authorization: Bearer <token>` or as the value of the token header; \
             generated and shown once when not given.",
        ),
        P::new(TOKEN_HEADER, "Token header", K::String)
            .default(json!("Authorization"))
            .describe("TOKEN: the header that carries the token (`Authorization` takes `Bearer <token>`)."),
        P::new(SIGNING_SECRET, "Signing secret", K::Secret).templated().describe(
            "STANDARD_WEBHOOKS: a `whsec_` secret; HMAC_SHA256: the secret the caller signs with. Generated and \
             shown once when not given.",
        ),
        P::new(SIGNATURE_HEADER, "Signature header", K::String)
            .default(json!("X-Hub-Signature-256"))
            .describe("HMAC_SHA256: the header that carries the signature."),
        P::new(SIGNATURE_PREFIX, "Signature prefix", K::String)
            .default(json!("sha256="))
            .describe("HMAC_SHA256: text before the signature in its header (blank for none)."),
        P::new(SIGNATURE_ENCODING, "Signature encoding", K::Enum)
            .options(&["hex", "base64"])
            .default(json!("hex"))
            .describe("HMAC_SHA256: how the signature is written."),
        P::new(TOLERANCE, "Timestamp tolerance (s)", K::Number)
            .range(1.0, 3600.0)
            .default(json!(300))
            .describe("STANDARD_WEBHOOKS: how far `webhook-timestamp` may be from now; older requests are refused."),
        P::new(MAX_BODY, "Largest body (bytes)", K::Number)
            .range(1.0, MAX_BODY_BYTES as f64)
            .default(json!(MAX_BODY_BYTES))
            .describe("Larger requests are refused with 413."),
    ];
    own.extend(crate::decode::properties());
    own
}

/// How a caller proves who it is.
#[derive(Debug, Clone)]
pub enum Auth {
    Token { token: Secret, header: http::HeaderName },
    StandardWebhooks { key: SigningKey, tolerance_s: i64 },
    Hmac { secret: Secret, header: http::HeaderName, prefix: String, base64: bool },
}

#[derive(Debug, Clone)]
pub struct InboundConfig {
    pub auth: Auth,
    pub max_body: usize,
    /// The format reads JSON: the body must be declared as JSON.
    pub json: bool,
}

impl InboundConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let header = |name: &'static str| -> Result<http::HeaderName, BuildError> {
            let text = s.required(name)?;
            http::HeaderName::try_from(text)
                .map_err(|_| BuildError::Config(format!("{name}: `{text}` is not a header name")))
        };
        let auth = match s.text(AUTH)?.unwrap_or("TOKEN") {
            "STANDARD_WEBHOOKS" => Auth::StandardWebhooks {
                key: SigningKey::parse(s.need_secret(SIGNING_SECRET)?.expose())
                    .map_err(|e| BuildError::Config(format!("{SIGNING_SECRET}: {e}")))?,
                tolerance_s: s.number(TOLERANCE)?.map_or(300, |n| n as i64),
            },
            "HMAC_SHA256" => Auth::Hmac {
                secret: s.need_secret(SIGNING_SECRET)?,
                header: header(SIGNATURE_HEADER)?,
                prefix: s.text(SIGNATURE_PREFIX)?.unwrap_or_default().to_owned(),
                base64: s.text(SIGNATURE_ENCODING)? == Some("base64"),
            },
            _ => Auth::Token { token: s.need_secret(TOKEN)?, header: header(TOKEN_HEADER)? },
        };
        let format = crate::decode::Decoder::of(i)?.format;
        Ok(Self {
            auth,
            max_body: s.number(MAX_BODY)?.map_or(MAX_BODY_BYTES, |n| n as usize),
            json: format != Format::Raw,
        })
    }
}

/// Header names, a `whsec_` secret, and the decoding settings.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    let mut errors = ValidationErrors::default();
    for name in [TOKEN_HEADER, SIGNATURE_HEADER] {
        if let Some(text) = s.text(name).ok().flatten() {
            if http::HeaderName::try_from(text).is_err() {
                errors.push(format!("properties.{name}"), format!("`{text}` is not a header name"));
            }
        }
    }
    let method = s.text(AUTH).ok().flatten().unwrap_or("TOKEN");
    if method == "STANDARD_WEBHOOKS" {
        if let Some(secret) = s.secret(SIGNING_SECRET).ok().flatten() {
            if !secret.expose().contains("{{") {
                if let Err(e) = SigningKey::parse(secret.expose()) {
                    errors.push(format!("properties.{SIGNING_SECRET}"), e);
                }
            }
        }
    }
    if s.number(MAX_BODY).ok().flatten().is_some_and(|n| n.fract() != 0.0) {
        errors.push(format!("properties.{MAX_BODY}"), "must be a whole number");
    }
    crate::decode::check(resolved, &specs, errors)
}

/// At create: the credential the authentication needs is generated when not
/// given, and shown once.
pub fn prepare(resolved: &mut Resolved) -> Vec<(&'static str, String)> {
    let specs = properties();
    let method = Settings::of_resolved(&specs, resolved).text(AUTH).ok().flatten().unwrap_or("TOKEN").to_owned();
    let (name, value) = match method.as_str() {
        "STANDARD_WEBHOOKS" => (SIGNING_SECRET, generate_secret()),
        "HMAC_SHA256" => (SIGNING_SECRET, random_text()),
        _ => (TOKEN, random_text()),
    };
    if resolved.secrets.get(name).is_some_and(|s| !s.expose().is_empty()) {
        return vec![];
    }
    resolved.secrets.insert(name.into(), Secret::new(value.clone()));
    vec![(name, value)]
}

/// 32 random bytes as hex.
fn random_text() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
