//! Secrets: a wrapper that never prints its value, and the cipher that keeps
//! secret values encrypted at rest (XChaCha20-Poly1305, random 192-bit nonce).
use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// A secret value. `Debug` and `Display` print `***`; it has no `Serialize`,
/// so it cannot reach a response or an export by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The plaintext, for the one place that needs it (a connector, the cipher).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("the secret key must be 32 bytes, base64-encoded (got {0} bytes)")]
    KeyLength(usize),
    #[error("the secret key is not valid base64")]
    KeyEncoding,
    #[error("a stored secret could not be decrypted: wrong secret key, or the value was altered")]
    Decrypt,
}

const VERSION: &str = "v1:";

/// Encrypts and decrypts values stored at rest.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Self { aead: XChaCha20Poly1305::new(key.into()) }
    }

    /// A key as kept in `SWITCHYARD_SECRET_KEY` or the key file: base64 of 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, CipherError> {
        let bytes = B64.decode(encoded.trim()).map_err(|_| CipherError::KeyEncoding)?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CipherError::KeyLength(bytes.len()))?;
        Ok(Self::new(&key))
    }

    pub fn generate_key_base64() -> String {
        B64.encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self.aead.encrypt(&nonce, plaintext).expect("XChaCha20-Poly1305 encryption cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{VERSION}{}", B64.encode(out))
    }

    pub fn decrypt(&self, stored: &str) -> Result<Vec<u8>, CipherError> {
        let body = stored.strip_prefix(VERSION).ok_or(CipherError::Decrypt)?;
        let raw = B64.decode(body).map_err(|_| CipherError::Decrypt)?;
        if raw.len() < 24 {
            return Err(CipherError::Decrypt);
        }
        let (nonce, ciphertext) = raw.split_at(24);
        self.aead.decrypt(XNonce::from_slice(nonce), ciphertext).map_err(|_| CipherError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn cipher_round_trips_and_detects_tampering() {
        let cipher = Cipher::from_base64(&Cipher::generate_key_base64()).unwrap();
        let sealed = cipher.encrypt(b"hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, cipher.encrypt(b"hunter2"), "nonces must differ");
        assert_eq!(cipher.decrypt(&sealed).unwrap(), b"hunter2");
        let other = Cipher::from_base64(&Cipher::generate_key_base64()).unwrap();
        assert!(other.decrypt(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(cipher.decrypt(&tampered).is_err());
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(matches!(Cipher::from_base64("not base64!"), Err(CipherError::KeyEncoding)));
        assert!(matches!(Cipher::from_base64("AAAA"), Err(CipherError::KeyLength(3))));
    }
}
