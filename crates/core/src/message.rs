//! Ingress messages: what a source sent, as a receiver hands it to the
//! engine, and as the integration's message log keeps it.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{IntegrationId, MessageId, RecordId};

/// The bytes of a payload the message log keeps.
pub const PAYLOAD_KEPT: usize = 16 * 1024;

/// One message from a source, before decoding.
#[derive(Debug, Clone, Default)]
pub struct InboundMessage {
    /// Where it came from at the source: a topic, a queue's message id, a
    /// partition and offset. Shown in the log; a topic's levels can name the device.
    pub source_ref: String,
    /// The source's own id of the message, when it has one: a message seen
    /// with the same id before is a duplicate and is not stored again.
    pub dedup_key: Option<String>,
    /// Attributes or headers (MQTT v5 user properties, queue attributes).
    pub attributes: Vec<(String, String)>,
    pub payload: Vec<u8>,
    /// When it was received (ms).
    pub received_at: i64,
    /// Where the receiver is at its source once this message is stored (an
    /// Event Hubs partition's offset, a poll's cursor), by name: written in
    /// the same transaction as the message, so a restart resumes after it.
    pub progress: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageOutcome {
    /// Its records are stored.
    Stored,
    /// Its source id was seen before: nothing stored again.
    Duplicate,
    /// It names a device no mapping resolves; kept for `replay-unmapped`.
    Unmapped,
    /// It could not be decoded into records.
    DecodeError,
}

impl MessageOutcome {
    pub const ALL: [MessageOutcome; 4] = [Self::Stored, Self::Duplicate, Self::Unmapped, Self::DecodeError];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Unmapped => "unmapped",
            Self::DecodeError => "decode_error",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A message as the integration's message log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedMessage {
    pub id: MessageId,
    pub integration_id: IntegrationId,
    /// When it was received (ms since the epoch).
    pub received_at: i64,
    /// Where it came from at the source (topic, message id, partition/offset).
    pub source_ref: String,
    /// The source's id of the message, when it has one (what deduplicates it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// Its attributes or headers (MQTT 5 user properties, queue attributes), as `[name, value]` pairs.
    pub attributes: Vec<(String, String)>,
    pub outcome: MessageOutcome,
    /// Why it was not stored (unmapped, decode error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The records stored from it.
    pub record_ids: Vec<RecordId>,
    /// The first 16 KiB of the payload: UTF-8 text, or base64 when it is not text.
    pub payload: String,
    /// `text` or `base64`.
    pub payload_encoding: String,
    /// The payload's whole size in bytes.
    pub payload_size: u64,
}

impl LoggedMessage {
    /// The kept payload's bytes; `None` when only its start was kept (a
    /// message longer than [`PAYLOAD_KEPT`] cannot be run again from the log).
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let bytes = match self.payload_encoding.as_str() {
            "base64" => base64::engine::general_purpose::STANDARD.decode(&self.payload).ok()?,
            _ => self.payload.as_bytes().to_vec(),
        };
        (bytes.len() as u64 == self.payload_size).then_some(bytes)
    }
}
