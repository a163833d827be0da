//! API keys: high-entropy random tokens, stored only as their SHA-256 hash.
//! A fast hash is right here: the keys are 256-bit random, so there is nothing
//! to brute-force, and every request must be checked quickly.
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "sy_";

/// A freshly generated key: the plaintext is shown once, then only `hash` is kept.
pub struct NewApiKey {
    pub plaintext: String,
    pub hash: String,
    /// The first characters, stored so a listing can tell keys apart.
    pub prefix: String,
}

pub fn generate_api_key() -> NewApiKey {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let plaintext = format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    NewApiKey { hash: hash_api_key(&plaintext), prefix: plaintext[..10].to_owned(), plaintext }
}

pub fn hash_api_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_unique_and_hash_stably() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(a.hash, hash_api_key(&a.plaintext));
        assert!(a.plaintext.starts_with(KEY_PREFIX) && a.plaintext.len() == 46);
        assert!(a.plaintext.starts_with(&a.prefix));
    }
}
