//! Service-account access tokens: a JWT (RS256, signed with ring) exchanged
//! at the key's token URI (RFC 7523), cached until a minute before expiry.
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::config::AccountKey;
use crate::egress::Outcome;
use crate::http::{form, HttpClient, ANSWER_MAX};

pub const SCOPE: &str = "https://www.googleapis.com/auth/pubsub";

pub fn signing_key(pem: &str) -> Result<RsaKeyPair, String> {
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "private_key is not a PEM PKCS#8 key".to_owned())?;
    RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| format!("private_key is not a usable RSA key: {e}"))
}

/// The signed assertion for `key`, issued at `now` (seconds).
pub fn assertion(key: &AccountKey, pair: &RsaKeyPair, now: u64) -> Result<String, String> {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let claims = json!({"iss": key.client_email, "scope": SCOPE, "aud": key.token_uri, "iat": now, "exp": now + 3600});
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), signed.as_bytes(), &mut signature)
        .map_err(|_| "signing the token request failed".to_owned())?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

pub struct Tokens {
    key: AccountKey,
    pair: RsaKeyPair,
    cached: Mutex<Option<(String, Instant)>>,
}

impl Tokens {
    pub fn new(key: AccountKey) -> Result<Tokens, String> {
        Ok(Tokens { pair: signing_key(&key.private_key)?, key, cached: Mutex::new(None) })
    }

    /// A valid access token, fetching one when needed. The error says what
    /// becomes of the delivery: a refused key is permanent.
    pub async fn get(&self, http: &HttpClient) -> Result<String, Outcome> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        if let Some(blocked) = http.refuses(&self.key.token_uri) {
            // Refused before the key signs anything.
            return Err(Outcome::Reject { reason: format!("the token URI: {blocked}"), deactivate: false });
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let assertion =
            assertion(&self.key, &self.pair, now).map_err(|reason| Outcome::Reject { reason, deactivate: false })?;
        let body = form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)]);
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let sent = http.post(&self.key.token_uri, &headers, body, Duration::from_secs(15)).await.map_err(|e| {
            let reason = format!("the token endpoint could not be reached: {e}");
            if e.is_permanent() {
                Outcome::Reject { reason, deactivate: false }
            } else {
                Outcome::Retry { after: None, reason }
            }
        })?;
        let status = sent.status();
        let answer: Value = serde_json::from_slice(&sent.bytes(ANSWER_MAX).await).unwrap_or(Value::Null);
        match answer["access_token"].as_str() {
            Some(token) if (200..300).contains(&status) => {
                let ttl = answer["expires_in"].as_u64().unwrap_or(3600).saturating_sub(60);
                *cached = Some((token.to_owned(), Instant::now() + Duration::from_secs(ttl)));
                Ok(token.to_owned())
            }
            _ => {
                let reason = format!(
                    "the token request was refused: {} {}",
                    answer["error"].as_str().unwrap_or(&format!("HTTP {status}")),
                    answer["error_description"].as_str().unwrap_or_default()
                );
                Err(if status >= 500 || status == 429 {
                    Outcome::Retry { after: None, reason }
                } else {
                    Outcome::Reject { reason: reason.trim_end().to_owned(), deactivate: false }
                })
            }
        }
    }

    /// Forgets the token (the API refused it).
    pub async fn clear(&self) {
        *self.cached.lock().await = None;
    }
}
