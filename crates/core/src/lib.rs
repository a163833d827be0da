//! Switchyard's domain: prefixed ids, the records the API manages, property
//! specs and their validation, secrets and API keys. Nothing here does I/O.

pub mod delivery;
pub mod draft;
pub mod error;
pub mod ids;
pub mod input;
pub mod keys;
pub mod message;
pub mod model;
pub mod path;
pub mod recipient;
pub mod record;
pub mod secret;
pub mod spec;
pub mod template;

pub use delivery::{Action, ActionStatus, Attempt, AttemptOutcome, Delivery, DeliveryStatus};
pub use draft::{DeviceRef, ParsedDraft, RecordDraft, RecordSource};
pub use error::{FieldError, ValidationErrors};
pub use ids::*;
pub use message::{InboundMessage, LoggedMessage, MessageOutcome, PAYLOAD_KEPT};
pub use model::*;
pub use path::ResourcePath;
pub use recipient::{Recipient, RecipientKind, RecipientStatus, Verification};
pub use record::{glob_match, Record, RecordKind, Trigger};
pub use secret::{Cipher, CipherError, Secret};

/// Milliseconds since the Unix epoch, the one time unit stored and served.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
