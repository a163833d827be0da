//! The contract between the engine and an ingress connector: the engine
//! builds a receiver for each enabled ingress integration and supervises it
//! (connect, back off, reconnect, stop); the receiver hands what its source
//! sends, message by message, to the sink, which decodes, maps and stores it
//! through the engine's one ingest path. A receiver acknowledges a message
//! at its source only once the sink says it is stored, in the order the
//! source sent them, and may hand over the next messages meanwhile.
use async_trait::async_trait;
use switchyard_core::{Globals, InboundMessage, Integration, MessageOutcome};

use crate::egress::{BuildError, EgressContext};

/// What a receiver tells the supervisor about its link, besides returning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Connected and subscribed: messages can flow.
    Connected,
    /// The link's keep-alive failed: it may be dead (it is given up soon).
    Silent(String),
}

/// The engine's side of a receiver.
#[async_trait]
pub trait IngressSink: Send + Sync {
    /// Decodes, maps and stores one message (its records, or its reason in
    /// the message log); returns once that is durable, so the message may be
    /// acknowledged. Waits while the integration is over its rate limit: the
    /// message waits unacknowledged at the source. An `Err` means nothing
    /// was stored (the store is unavailable): the receiver must not
    /// acknowledge it, and gives up the link so the source sends it again.
    async fn message(&self, message: InboundMessage) -> Result<MessageOutcome, String>;
    fn link(&self, event: LinkEvent);
    /// What this receiver kept about its source under `name`, across
    /// restarts (the filters a persistent session was subscribed to).
    async fn progress(&self, name: &str) -> Option<String>;
    /// Keeps `value` under `name`, durably before it returns.
    async fn save_progress(&self, name: &str, value: &str) -> Result<(), String>;
    /// Resolves when the receiver must stop (a shutdown, a change, a
    /// disable): it takes no new message, acknowledges those stored, and
    /// returns `Ok`. What it leaves unacknowledged the source sends again.
    async fn stopping(&self);
}

/// A connection to one source. `run` returns when the link fails (with
/// why) and the supervisor calls it again after a back-off, or when the
/// sink asks it to stop.
#[async_trait]
pub trait Ingress: Send {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String>;
}

/// Makes the receiver for one integration from its settings.
/// `globals`: the organization's values, for templated properties.
pub type BuildIngress = fn(&Integration, &Globals, &EgressContext) -> Result<Box<dyn Ingress>, BuildError>;

/// Hands a batch the source gave at once (a queue's receive, a pull) to
/// the sink, in order, and waits for it; every `every`, `extend(n)` runs
/// with how many are stored so far, so the source keeps the rest from other
/// receivers meanwhile (SQS visibility, a Pub/Sub ack deadline). Returns how
/// many were stored (the first ones) and the error that stopped the rest.
pub async fn store_batch<F, Fut>(
    sink: &dyn IngressSink,
    messages: Vec<InboundMessage>,
    every: std::time::Duration,
    mut extend: F,
) -> (usize, Option<String>)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::stream::{FuturesOrdered, StreamExt};
    let mut pending: FuturesOrdered<_> = messages.into_iter().map(|m| sink.message(m)).collect();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut stored = 0;
    loop {
        tokio::select! {
            next = pending.next() => match next {
                Some(Ok(_)) => stored += 1,
                Some(Err(e)) => return (stored, Some(e)),
                None => return (stored, None),
            },
            _ = tick.tick() => extend(stored).await,
        }
    }
}

/// A request to an endpoint of Switchyard's own that a source posts its
/// messages to (HTTP inbound), as the API received it.
#[derive(Debug)]
pub struct InboundRequest<'a> {
    /// The path after the integration's id (`sites/sensor-7/data`), used as a topic; empty when none.
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    /// When it arrived (ms).
    pub received_at: i64,
}

/// Why an endpoint refuses a request; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The caller did not prove who it is (401), with what was wrong.
    Unauthorized(String),
    /// The body is larger than the integration takes (413), with its limit.
    TooLarge(usize),
    /// The body's content type is not one the integration's format reads (415), with why.
    UnsupportedMediaType(String),
}

/// An endpoint that callers post messages to: it checks who sent a request
/// and turns it into a message for the sink. Unlike a receiver it holds no
/// link: the supervisor keeps it open while the integration is enabled.
pub trait Endpoint: Send + Sync {
    fn accept(&self, request: &InboundRequest<'_>) -> Result<InboundMessage, Refusal>;
}

/// Makes the endpoint of one integration from its settings.
pub type BuildEndpoint = fn(&Integration, &Globals) -> Result<Box<dyn Endpoint>, BuildError>;
