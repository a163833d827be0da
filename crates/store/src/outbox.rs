//! What the data path hands the store and gets back: records with their
//! fan-out, the outcome of an ingest, deliveries claimed for sending, the
//! result of an attempt, and a delivery as its log shows it.
use base64::Engine as _;
use switchyard_core::{
    Attempt, Delivery, DeliveryId, DeliveryStatus, InboundMessage, IntegrationId, MessageId, MessageOutcome, OrgId,
    Record, RecordId, RecordSource, PAYLOAD_KEPT,
};

use crate::json_text;

/// One ingest's writes, stored all or nothing: its records and, for a
/// message an ingress integration received, the message's log entry.
#[derive(Debug, Clone)]
pub struct Batch {
    pub org: OrgId,
    pub records: Vec<NewRecord>,
    pub message: Option<NewMessage>,
    /// Stored only if this lease is still held as it says when the round commits.
    pub fence: Option<crate::Fence>,
}

impl Batch {
    pub fn new(org: OrgId, records: Vec<NewRecord>) -> Self {
        Self { org, records, message: None, fence: None }
    }

    pub fn with_message(mut self, message: NewMessage) -> Self {
        self.message = Some(message);
        self
    }

    pub fn fenced(mut self, fence: Option<crate::Fence>) -> Self {
        self.fence = fence;
        self
    }
}

/// A received message's entry in its integration's message log. A message
/// whose `source_id` the integration logged before is stored as a
/// duplicate instead, and its batch's records are not stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub integration_id: IntegrationId,
    pub received_at: i64,
    pub source_ref: String,
    pub source_id: Option<String>,
    /// The attributes as JSON (`[[name, value], …]`).
    pub attributes: String,
    pub outcome: MessageOutcome,
    pub reason: Option<String>,
    /// The kept part of the payload, as text or base64 (`payload_encoding`).
    pub payload: String,
    pub payload_encoding: &'static str,
    pub payload_size: u64,
    /// A replay of the unmapped message logged as `id`: its entry takes the
    /// new outcome, if it is still unmapped (else the batch is a duplicate).
    pub replay: bool,
    /// The receiver's progress at its source with this message, kept in the
    /// same round (a duplicate's too: the source moved past it either way).
    pub progress: Vec<(String, String)>,
}

impl NewMessage {
    /// The log entry of `message`, its payload cut to [`PAYLOAD_KEPT`] bytes.
    pub fn new(
        id: MessageId,
        integration_id: IntegrationId,
        message: &InboundMessage,
        outcome: MessageOutcome,
        reason: Option<String>,
    ) -> Self {
        let kept = &message.payload[..message.payload.len().min(PAYLOAD_KEPT)];
        let (payload, payload_encoding) = match std::str::from_utf8(kept) {
            Ok(text) => (text.to_owned(), "text"),
            // A cut may split a character: what is valid up to it is still text.
            Err(e) if e.error_len().is_none() && kept.len() < message.payload.len() => {
                (String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned(), "text")
            }
            Err(_) => (base64::engine::general_purpose::STANDARD.encode(kept), "base64"),
        };
        Self {
            id,
            integration_id,
            received_at: message.received_at,
            source_ref: message.source_ref.clone(),
            source_id: message.dedup_key.clone(),
            attributes: crate::json_text(&message.attributes),
            outcome,
            reason,
            payload,
            payload_encoding,
            payload_size: message.payload.len() as u64,
            replay: false,
            progress: message.progress.clone(),
        }
    }
}

/// A record to store, with one delivery per integration its triggers route it to.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub id: RecordId,
    pub record: Record,
    /// The record as stored and delivered (JSON).
    pub body: String,
    /// Where it came from (none for samples).
    pub source: Option<RecordSource>,
    pub targets: Vec<NewDelivery>,
}

impl NewRecord {
    pub fn new(record: Record, targets: Vec<NewDelivery>) -> Self {
        let body = json_text(&record);
        Self { id: RecordId::new(), record, body, source: None, targets }
    }

    pub fn from_source(mut self, source: RecordSource) -> Self {
        self.source = Some(source);
        self
    }
}

/// A delivery created with its record: pending, due at once, and already
/// leased to this node until `lease_until` when the node sends it straight
/// from memory (0: any node claims it from the outbox).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub integration_id: IntegrationId,
    pub lease_until: i64,
}

impl NewDelivery {
    pub fn new(integration_id: IntegrationId) -> Self {
        Self { id: DeliveryId::new(), integration_id, lease_until: 0 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub stored: usize,
    /// Records whose sender id was seen before: neither stored nor routed again.
    pub duplicates: usize,
    pub deliveries: usize,
    /// The positions, in the batch, of the duplicates.
    pub skipped: Vec<usize>,
    /// The batch's message was logged before (by its source id): none of
    /// its records were stored.
    pub duplicate_message: bool,
    /// Its fence's lease is no longer held as it said: nothing of it was
    /// stored (every record is in `skipped`).
    pub fenced: bool,
}

/// Which messages a message log page shows.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub outcome: Option<MessageOutcome>,
}

/// Which of a device's records a page shows.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub device: Option<switchyard_core::DeviceId>,
    pub property: Option<String>,
    pub kind: Option<switchyard_core::RecordKind>,
    /// Sampled at or after (ms).
    pub from: Option<i64>,
    /// Sampled before (ms).
    pub to: Option<i64>,
}

/// A stored record and where it came from.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub id: RecordId,
    pub record: Record,
    pub source: Option<RecordSource>,
}

/// A delivery claimed for sending: leased until the lease runs out.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: DeliveryId,
    pub org_id: OrgId,
    pub integration_id: IntegrationId,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Attempts made before the last resend; the retry schedule counts from here.
    pub retry_from: u32,
    /// The record as delivered (JSON).
    pub body: String,
    /// The record itself, when the holder has it already (handed over at
    /// ingest); otherwise it is read from `body`.
    pub record: Option<std::sync::Arc<Record>>,
    /// When the delivery was created (its record accepted), ms.
    pub created_at: i64,
    /// Until when this holder's lease runs (ms); 0 when not leased (a test send).
    pub lease_until: i64,
}

/// The result of one attempt, and what becomes of the delivery.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: DeliveryId,
    pub attempt: Attempt,
    pub status: DeliveryStatus,
    /// When the next attempt is due (`Retrying` only).
    pub next_attempt_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PendingSummary {
    pub org_id: OrgId,
    pub integration_id: IntegrationId,
    pub pending: u64,
    pub oldest_created_at: i64,
}

/// A delivery as its log shows it: the record it carries, where that came
/// from, and every attempt (oldest first).
#[derive(Debug, Clone)]
pub struct LoggedDelivery {
    pub delivery: Delivery,
    pub record: Record,
    pub source: Option<RecordSource>,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    /// Created at or after (ms).
    pub from: Option<i64>,
    /// Created before (ms).
    pub to: Option<i64>,
}
