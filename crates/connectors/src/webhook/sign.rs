//! Standard Webhooks signatures: HMAC-SHA256 over `id.timestamp.body`,
//! base64, sent as `v1,<signature>` (space-separated during key rotation).
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// A signing key: the base64-decoded part of a `whsec_` secret.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// Accepts `whsec_<base64>` (24 to 64 bytes once decoded).
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or("must start with whsec_")?;
        let key = B64.decode(encoded).map_err(|_| "must be whsec_ followed by base64".to_owned())?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!("must hold 24 to 64 bytes of key (has {})", key.len()));
        }
        Ok(Self(key))
    }

    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", B64.encode(self.mac(id, timestamp, body).finalize().into_bytes()))
    }

    /// Whether a `webhook-signature` header holds a signature of this key
    /// (compared in constant time); entries of other versions are skipped.
    pub fn verifies(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header.split_whitespace().filter_map(|entry| entry.strip_prefix("v1,")).any(|signature| {
            B64.decode(signature).is_ok_and(|bytes| self.mac(id, timestamp, body).verify_slice(&bytes).is_ok())
        })
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// A new `whsec_` secret with 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

/// The `webhook-signature` header value: one signature per key, space-separated.
pub fn signature_header(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|k| k.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        let key = SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            key.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn a_signature_verifies_only_with_its_key_id_time_and_body() {
        let key = SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let header = format!("v2,abc {}", key.sign("msg_1", 1649367553, b"{}"));
        assert!(key.verifies("msg_1", 1649367553, b"{}", &header), "the v1 entry among others");
        assert!(!key.verifies("msg_2", 1649367553, b"{}", &header));
        assert!(!key.verifies("msg_1", 1649367554, b"{}", &header));
        assert!(!key.verifies("msg_1", 1649367553, b"{ }", &header));
        let other = SigningKey::parse(&generate_secret()).unwrap();
        assert!(!other.verifies("msg_1", 1649367553, b"{}", &header));
        assert!(!key.verifies("msg_1", 1649367553, b"{}", "v1,not-base64!"));
    }

    #[test]
    fn generated_secrets_parse_and_bad_ones_are_explained() {
        assert!(SigningKey::parse(&generate_secret()).is_ok());
        assert!(SigningKey::parse("C2FVsBQIhrscChlQIMV").unwrap_err().contains("whsec_"));
        assert!(SigningKey::parse("whsec_AAAA").unwrap_err().contains("24 to 64"));
    }
}
