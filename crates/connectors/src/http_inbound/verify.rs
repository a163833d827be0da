//! Accepting a request: its size, who sent it, its content type, then the
//! message it makes (its headers as attributes, its path as the topic, its
//! `webhook-id` or `Idempotency-Key` as the id that deduplicates it).
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use switchyard_core::InboundMessage;

use super::config::{Auth, InboundConfig};
use crate::ingress::{Endpoint, InboundRequest, Refusal};

/// Headers that carry credentials: never kept in the message log.
const CREDENTIALS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "webhook-signature"];
/// At most this many headers are kept as attributes, each value cut to `VALUE_KEPT` bytes.
const HEADERS_KEPT: usize = 64;
const VALUE_KEPT: usize = 1024;

impl Endpoint for InboundConfig {
    fn accept(&self, request: &InboundRequest<'_>) -> Result<InboundMessage, Refusal> {
        if request.body.len() > self.max_body {
            return Err(Refusal::TooLarge(self.max_body));
        }
        self.authenticate(request)?;
        if self.json {
            let content_type = header(request.headers, "content-type").unwrap_or_default();
            if !is_json(content_type) {
                return Err(Refusal::UnsupportedMediaType(format!(
                    "this integration reads JSON: send Content-Type: application/json (got `{content_type}`)"
                )));
            }
        }
        let secret_header = match &self.auth {
            Auth::Token { header, .. } | Auth::Hmac { header, .. } => Some(header.as_str()),
            Auth::StandardWebhooks { .. } => None,
        };
        let attributes = request
            .headers
            .iter()
            .filter(|(name, _)| !CREDENTIALS.contains(&name.as_str()) && Some(name.as_str()) != secret_header)
            .take(HEADERS_KEPT)
            .map(|(name, value)| {
                let mut text = String::from_utf8_lossy(value.as_bytes()).into_owned();
                if text.len() > VALUE_KEPT {
                    let mut cut = VALUE_KEPT;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                (name.as_str().to_owned(), text)
            })
            .collect();
        let path = request.path.trim_matches('/');
        Ok(InboundMessage {
            source_ref: if path.is_empty() { "inbound".into() } else { path.to_owned() },
            dedup_key: header(request.headers, "webhook-id")
                .or_else(|| header(request.headers, "idempotency-key"))
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            attributes,
            payload: request.body.to_vec(),
            received_at: request.received_at,
            progress: vec![],
        })
    }
}

impl InboundConfig {
    fn authenticate(&self, request: &InboundRequest<'_>) -> Result<(), Refusal> {
        let refuse = |why: String| Err(Refusal::Unauthorized(why));
        match &self.auth {
            Auth::Token { token, header: name } => {
                let Some(given) = header(request.headers, name.as_str()) else {
                    return refuse(format!("send the integration's token in the {name} header"));
                };
                let given = if *name == http::header::AUTHORIZATION {
                    match given.strip_prefix("Bearer ") {
                        Some(t) => t.trim(),
                        None => return refuse("the Authorization header must be `Bearer <token>`".into()),
                    }
                } else {
                    given.trim()
                };
                if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
                    Ok(())
                } else {
                    refuse("the token does not match".into())
                }
            }
            Auth::StandardWebhooks { key, tolerance_s } => {
                let (Some(id), Some(timestamp), Some(signature)) = (
                    header(request.headers, "webhook-id"),
                    header(request.headers, "webhook-timestamp"),
                    header(request.headers, "webhook-signature"),
                ) else {
                    return refuse(
                        "a signed request carries webhook-id, webhook-timestamp and webhook-signature".into(),
                    );
                };
                let Ok(timestamp) = timestamp.trim().parse::<i64>() else {
                    return refuse("webhook-timestamp must be seconds since the epoch".into());
                };
                let now = request.received_at / 1000;
                if (now - timestamp).abs() > *tolerance_s {
                    return refuse(format!(
                        "webhook-timestamp is {} s from now, more than the {tolerance_s} s allowed",
                        (now - timestamp).abs()
                    ));
                }
                if key.verifies(id, timestamp, request.body, signature) {
                    Ok(())
                } else {
                    refuse("the webhook-signature does not match".into())
                }
            }
            Auth::Hmac { secret, header: name, prefix, base64 } => {
                let Some(given) = header(request.headers, name.as_str()) else {
                    return refuse(format!("send the body's HMAC-SHA256 in the {name} header"));
                };
                let Some(encoded) = given.trim().strip_prefix(prefix.as_str()) else {
                    return refuse(format!("the {name} header must start with `{prefix}`"));
                };
                let decoded = if *base64 { B64.decode(encoded).ok() } else { hex::decode(encoded).ok() };
                let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("any key length");
                mac.update(request.body);
                match decoded {
                    Some(bytes) if mac.verify_slice(&bytes).is_ok() => Ok(()),
                    _ => refuse(format!("the {name} signature does not match the body")),
                }
            }
        }
    }
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `application/json`, or any `+json` type (`application/senml+json`), with parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}
