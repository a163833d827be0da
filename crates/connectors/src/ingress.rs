//! The contract between the engine and an ingress connector: the engine
//! builds a receiver for each enabled ingress integration and supervises it
//! (connect, back off, reconnect, stop); the receiver hands what its source
//! sends, message by message, to the sink, which decodes, maps and stores it
//! through the engine's one ingest path. A receiver acknowledges a message
//! at its source only once the sink says it is stored, in the order the
//! source sent them, and may hand over the next messages meanwhile.
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use futures_util::stream::{FuturesOrdered, StreamExt};
use switchyard_core::{Globals, InboundMessage, Integration, MessageOutcome};

use crate::egress::{BuildError, EgressContext};

/// What a receiver tells the supervisor about its link, besides returning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Connected and subscribed: messages can flow.
    Connected,
    /// The link's keep-alive failed: it may be dead (it is given up soon).
    Silent(String),
    /// A polled source's poll ended, or waits to try again (see [`crate::poll`]).
    Polled(PollReport),
}

/// How a polled source's last poll went, and when the next one is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// When the poll started (ms).
    pub at: i64,
    pub outcome: PollOutcome,
    /// Messages it handed over (each stored, or logged with its reason).
    pub messages: usize,
    /// When the next try is due (ms): a retry of this poll, or the next tick.
    pub next_at: i64,
    /// The source's words, when it failed or waits to retry.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// Every page was fetched and what it held handed over.
    Polled,
    /// The source had nothing new (304 Not Modified).
    NotModified,
    /// The source asked to wait (429) or failed for now (5xx, the network):
    /// the poll is tried again at `next_at`.
    Retrying,
    /// The source refused it (401, 404): the settings or the source must change.
    Failed,
}

/// What resolves once a message handed to the sink is durable (its records,
/// or its reason in the message log): then it may be acknowledged. An
/// `Err` means nothing was stored (the store is unavailable, the lease
/// lost): the receiver must not acknowledge it, and gives up the link so
/// the source sends it again.
pub type Storing = Pin<Box<dyn Future<Output = Result<Taken, String>> + Send>>;

/// What became of a message handed to the sink, once it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub outcome: MessageOutcome,
    /// Records stored from it.
    pub records: usize,
}

/// The engine's side of a receiver.
#[async_trait]
pub trait IngressSink: Send + Sync {
    /// Takes one message: waits while the integration is over its rate
    /// limit (the message waits unacknowledged at the source), then decodes
    /// and maps it and queues it to be stored, and returns what resolves
    /// once it is stored. A receiver hands its messages over one call after
    /// the other, in the order the source sent them (that is the order they
    /// are stored in), and awaits their storing side by side. An `Err`:
    /// nothing was taken (stopping, or the store unavailable).
    async fn message(&self, message: InboundMessage) -> Result<Storing, String>;
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
    /// Polled types: the oldest backfill asked of this integration that is
    /// not finished, where it got to.
    async fn backfill(&self) -> Result<Option<crate::poll::Backfill>, String>;
    /// Keeps a backfill's progress, and with `end` finishes it (done, or
    /// failed with why). `Ok(false)`: it was cancelled meanwhile; stop it.
    async fn backfill_progress(
        &self,
        job: &crate::poll::Backfill,
        end: Option<Result<(), String>>,
    ) -> Result<bool, String>;
    /// Resolves when a backfill may have been asked for since the last call.
    async fn backfill_asked(&self);
    /// A secret the receiver kept under `name` (a refreshed OAuth token).
    async fn kept_secret(&self, name: &str) -> Option<switchyard_core::Secret>;
    /// Keeps a secret, encrypted like the integration's own, durably before it returns.
    async fn keep_secret(&self, name: &str, value: &switchyard_core::Secret) -> Result<(), String>;
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

/// A receiver's messages on their way into the sink: handed over one
/// after the other, in the order they were pushed (the order they are
/// stored in), while those handed over are stored side by side. Each
/// carries a tag `P` the receiver gets back with its outcome, in order (an
/// MQTT publish to acknowledge). One way for every receiver to pipeline.
pub struct Handover<'a, P> {
    sink: &'a dyn IngressSink,
    waiting: VecDeque<(P, Option<InboundMessage>)>,
    taking: Option<Taking<'a, P>>,
    storing: FuturesOrdered<Stored<'a, P>>,
    closed: bool,
}

type Taking<'a, P> = Pin<Box<dyn Future<Output = (P, Result<Storing, String>)> + Send + 'a>>;
type Stored<'a, P> = Pin<Box<dyn Future<Output = (P, Result<Taken, String>)> + Send + 'a>>;

impl<'a, P: Send + 'a> Handover<'a, P> {
    pub fn new(sink: &'a dyn IngressSink) -> Self {
        Self { sink, waiting: VecDeque::new(), taking: None, storing: FuturesOrdered::new(), closed: false }
    }

    pub fn push(&mut self, tag: P, message: InboundMessage) {
        self.waiting.push_back((tag, Some(message)));
    }

    /// A message that is not stored but answered in its turn (MQTT: sent
    /// for a filter unsubscribed just now).
    pub fn skip(&mut self, tag: P) {
        self.waiting.push_back((tag, None));
    }

    /// Messages pushed and not yet stored.
    pub fn len(&self) -> usize {
        self.waiting.len() + usize::from(self.taking.is_some()) + self.storing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stopping: what waits is dropped (not taken: the source sends it again);
    /// what is being taken or stored finishes.
    pub fn close(&mut self) {
        self.closed = true;
        self.waiting.clear();
    }

    /// The next message, in order, with its outcome once it is stored, or
    /// with why the sink refused it (`Err`). `None` when nothing is left.
    pub async fn next(&mut self) -> Option<(P, Result<Taken, String>)> {
        loop {
            if self.taking.is_none() && !self.closed {
                while let Some((tag, message)) = self.waiting.pop_front() {
                    match message {
                        Some(m) => {
                            let sink = self.sink;
                            self.taking = Some(Box::pin(async move { (tag, sink.message(m).await) }));
                            break;
                        }
                        None => {
                            let skipped = Taken { outcome: MessageOutcome::Duplicate, records: 0 };
                            self.storing.push_back(Box::pin(std::future::ready((tag, Ok(skipped)))))
                        }
                    }
                }
            }
            if self.taking.is_none() && self.storing.is_empty() {
                return None;
            }
            let (taking, storing) = (&mut self.taking, &mut self.storing);
            tokio::select! {
                (tag, taken) = async { taking.as_mut().expect("checked").await }, if taking.is_some() => {
                    *taking = None;
                    // A refusal takes its place in the order too: what came before it is answered first.
                    match taken {
                        Ok(stored) => storing.push_back(Box::pin(async move { (tag, stored.await) })),
                        Err(e) => storing.push_back(Box::pin(std::future::ready((tag, Err(e))))),
                    }
                }
                Some(done) = storing.next(), if !storing.is_empty() => return Some(done),
            }
        }
    }
}

/// What [`store_batch`] stored of a batch.
#[derive(Debug, Default)]
pub struct Batched {
    /// The first this many messages are stored.
    pub stored: usize,
    /// Records stored from them.
    pub records: usize,
    /// What stopped the rest.
    pub error: Option<String>,
}

/// Hands a batch the source gave at once (a queue's receive, a pull, a
/// page) to the sink and waits for it; every `every`, `extend(n)` runs with
/// how many are stored so far, so the source keeps the rest from other
/// receivers meanwhile (SQS visibility, a Pub/Sub ack deadline).
pub async fn store_batch<F, Fut>(
    sink: &dyn IngressSink,
    messages: Vec<InboundMessage>,
    every: std::time::Duration,
    mut extend: F,
) -> Batched
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut handover = Handover::new(sink);
    for m in messages {
        handover.push((), m);
    }
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut done = Batched::default();
    loop {
        tokio::select! {
            next = handover.next() => match next {
                Some((_, Ok(taken))) => {
                    done.stored += 1;
                    done.records += taken.records;
                }
                Some((_, Err(e))) => {
                    done.error = Some(e);
                    return done;
                }
                None => return done,
            },
            _ = tick.tick() => extend(done.stored).await,
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
