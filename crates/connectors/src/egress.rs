//! The contract between the delivery engine and an egress connector: the
//! engine hands over one delivery; the connector sends it and classifies
//! what happened. The engine owns retries, schedules and bookkeeping.
use std::time::Duration;

use async_trait::async_trait;
use switchyard_core::{DeviceId, OrgId, Record};

use crate::policy::EgressPolicy;

/// One delivery to send.
pub struct Outbound<'a> {
    /// The delivery id: stable across retries, sent so the far side can deduplicate.
    pub delivery_id: &'a str,
    pub record: &'a Record,
    /// The record's JSON exactly as stored.
    pub body: &'a str,
}

/// What the far side said, as far as it said anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub status: Option<u16>,
    pub remote_id: Option<String>,
    /// The start of the answer (at most 4 KiB).
    pub excerpt: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Worth trying again, after `after` if the far side asked for a delay.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Retrying cannot help. `deactivate`: the far side asked us to stop (410 Gone).
    Reject {
        reason: String,
        deactivate: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SendResult {
    pub outcome: Outcome,
    pub response: Response,
    /// Where it went (URL, topic, ARN…).
    pub target: String,
    /// What was sent, when it is not the record (webhooks) or the published
    /// message (the others) that the delivery log rebuilds from the record:
    /// a rendered body template, a batch, a notification's text.
    pub sent: Option<String>,
}

/// The reason, as a connection's status keeps it.
impl std::fmt::Display for SendResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Delivered => f.write_str("delivered"),
            Outcome::Retry { reason, .. } | Outcome::Reject { reason, .. } => f.write_str(reason),
        }
    }
}

impl SendResult {
    /// Says what was sent (kept bounded, as a response excerpt is).
    pub fn with_sent(mut self, sent: &str) -> Self {
        self.sent = Some(switchyard_core::delivery::excerpt(sent, switchyard_core::delivery::RESPONSE_EXCERPT_MAX));
        self
    }
}

#[async_trait]
pub trait Egress: Send + Sync {
    async fn send(&self, message: &Outbound<'_>) -> SendResult;

    /// Sends per second at most, if the integration sets a limit.
    fn rate_limit(&self) -> Option<f64> {
        None
    }

    /// Records per request and how long to wait for a batch to fill, if the
    /// integration sends batches.
    fn batching(&self) -> Option<(usize, std::time::Duration)> {
        None
    }

    /// Sends several records of one kind in one request (called only when
    /// `batching` is set). The result applies to every record in it. This
    /// fallback sends them one by one and reports the first failure.
    async fn send_batch(&self, messages: &[Outbound<'_>]) -> SendResult {
        let mut last = None;
        for m in messages {
            let result = self.send(m).await;
            if result.outcome != Outcome::Delivered {
                return result;
            }
            last = Some(result);
        }
        last.expect("a batch is never empty")
    }
}

/// What notification templates may say about a record's device and its
/// Place. The engine answers from the store; connectors never touch it.
#[async_trait]
pub trait Resources: Send + Sync {
    /// `{"device": {"id", "name", "deviceType", "externalIds", "metadata"},
    /// "place": {"id", "name", "metadata"}}`; absent parts when unknown.
    async fn describe(&self, org: &OrgId, device: &DeviceId) -> serde_json::Value;
    /// A Place, for the types that fetch for where it is (weather).
    async fn place(&self, org: &OrgId, place: &switchyard_core::PlaceId) -> Option<switchyard_core::Place>;
}

/// What connectors share: the HTTP client (no redirects, the egress policy
/// applied at connect time), the policy itself for other transports, and
/// the resource lookup for templates.
#[derive(Clone)]
pub struct EgressContext {
    pub http: crate::http::HttpClient,
    pub policy: EgressPolicy,
    pub resources: Option<std::sync::Arc<dyn Resources>>,
}

impl EgressContext {
    pub fn new(policy: EgressPolicy) -> Self {
        let http = crate::http::HttpClient::new(policy.clone(), 64);
        Self { http, policy, resources: None }
    }

    pub fn with_resources(mut self, resources: std::sync::Arc<dyn Resources>) -> Self {
        self.resources = Some(resources);
        self
    }

    /// The device and Place of a record, for templates (empty when no lookup is set).
    pub async fn describe(&self, org: &OrgId, device: &DeviceId) -> serde_json::Value {
        match &self.resources {
            Some(r) => r.describe(org, device).await,
            None => serde_json::json!({}),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Config(String),
}
