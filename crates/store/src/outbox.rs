//! What the data path hands the store and gets back: records with their
//! fan-out, the outcome of an ingest, deliveries claimed for sending, the
//! result of an attempt, and a delivery as its log shows it.
use switchyard_core::{
    Attempt, Delivery, DeliveryId, DeliveryStatus, IntegrationId, OrgId, Record, RecordId, RecordSource,
};

use crate::json_text;

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
