//! Who a notification integration (e-mail, SMS, phone) reaches. An e-mail
//! address is active once its syntax checks out; a phone number stays
//! pending, receiving nothing, until the code sent to it is confirmed.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{IntegrationId, RecipientId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecipientKind {
    Email,
    Phone,
}

impl RecipientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecipientStatus {
    /// Receives notifications.
    Active,
    /// Waiting for its verification code; receives nothing.
    Pending,
}

impl RecipientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "pending" => Some(Self::Pending),
            _ => None,
        }
    }
}

/// A pending recipient's code: only its hash is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub code_hash: String,
    pub expires_at: i64,
    /// Wrong codes tried so far.
    pub attempts: u32,
}

/// How long a verification code is valid.
pub const CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// Wrong codes allowed before the code is void (a new one must be sent).
pub const CODE_ATTEMPTS: u32 = 5;

impl Verification {
    /// A fresh six-digit code for `recipient`, and what to store of it.
    pub fn issue(recipient: &RecipientId, now: i64) -> (String, Verification) {
        use rand::Rng;
        let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
        let v = Verification { code_hash: hash(recipient, &code), expires_at: now + CODE_TTL_MS, attempts: 0 };
        (code, v)
    }

    pub fn matches(&self, recipient: &RecipientId, code: &str) -> bool {
        let given = hash(recipient, code.trim());
        // Constant time: compare every byte.
        given.len() == self.code_hash.len()
            && given.bytes().zip(self.code_hash.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

fn hash(recipient: &RecipientId, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{recipient}:{code}").as_bytes()))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub id: RecipientId,
    pub integration_id: IntegrationId,
    pub kind: RecipientKind,
    /// An e-mail address or an E.164 phone number.
    pub address: String,
    pub name: Option<String>,
    pub status: RecipientStatus,
    pub verification: Option<Verification>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_matches_only_itself_and_only_its_recipient() {
        let (a, b) = (RecipientId::new(), RecipientId::new());
        let (code, v) = Verification::issue(&a, 0);
        assert_eq!(code.len(), 6);
        assert!(v.matches(&a, &code));
        assert!(v.matches(&a, &format!(" {code} ")));
        assert!(!v.matches(&b, &code), "bound to its recipient");
        let other = if code == "000000" { "000001" } else { "000000" };
        assert!(!v.matches(&a, other));
        assert_eq!(v.expires_at, CODE_TTL_MS);
    }
}
