//! Deliveries (one record to one integration) and their attempts.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{DeliveryId, IntegrationId, RecordId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// Failed at least once; another attempt is scheduled.
    Retrying,
    Succeeded,
    /// Rejected, or out of attempts. Kept, countable and resendable.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [Self::Pending, Self::Retrying, Self::Succeeded, Self::Dead];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Delivered,
    /// Failed in a way worth trying again.
    Retry,
    /// Failed in a way that retrying cannot fix.
    Rejected,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Delivered, Self::Retry, Self::Rejected].into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: DeliveryId,
    pub integration_id: IntegrationId,
    pub record_id: RecordId,
    pub status: DeliveryStatus,
    /// Whether the record reached the far side: `status` is `succeeded`.
    pub success: bool,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due (pending and retrying only); for a
    /// delivery a node holds or is sending, when that node's lease ends.
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    /// Where the last attempt went (URL, topic, ARN…).
    pub target: Option<String>,
    pub last_error: Option<String>,
}

/// One try at a delivery, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub number: u32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: AttemptOutcome,
    /// The far side's status code, where it has one (HTTP).
    pub status_code: Option<u16>,
    /// The far side's id for the message, where it gives one.
    pub remote_id: Option<String>,
    pub error: Option<String>,
    /// The start of the far side's answer (at most 4 KiB).
    pub response_excerpt: Option<String>,
    pub target: Option<String>,
    /// What was sent (at most 4 KiB), when it is not the record or the
    /// published message as the log rebuilds them: a rendered template, a
    /// batch, a notification's text. The log shows it as `publishedData`.
    #[serde(skip)]
    pub sent: Option<String>,
}

/// Largest response excerpt kept per attempt.
pub const RESPONSE_EXCERPT_MAX: usize = 4096;

/// Cuts text to at most `max` bytes on a character boundary.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Accepted, not started yet.
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Stopped by `POST /v2/actions/{id}/cancel`; what it did so far stays done.
    Cancelled,
}

impl ActionStatus {
    pub const ALL: [Self; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Queued or running.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// An asynchronous action on an integration (`test-send`, `backfill`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub id: crate::ActionId,
    pub integration_id: IntegrationId,
    pub kind: String,
    pub status: ActionStatus,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Kind-specific counters, e.g. `{"scanned": 1200, "matched": 300}`.
    #[schema(value_type = Object)]
    pub progress: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}
