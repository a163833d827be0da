//! The contract between the engine and an ingress connector: the engine
//! builds a receiver for each enabled ingress integration and supervises it
//! (connect, back off, reconnect, stop); the receiver turns what its source
//! sends into record drafts and hands them, message by message, to the sink,
//! the engine's one ingest path. It acknowledges a message at its source only
//! once the sink says the message is stored.
use async_trait::async_trait;
use switchyard_core::{Integration, Metadata, RecordDraft};

use crate::egress::{BuildError, EgressContext};

/// What became of one message handed to the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Its records are committed (`duplicates` of them were seen before).
    Records { stored: usize, duplicates: usize },
    /// It could not become records (it did not decode, or names no mapped
    /// device); the reason is stored in the message log instead. Either way
    /// the message is safe to acknowledge.
    Refused { reason: String },
}

/// The engine's side of a receiver: where its messages go.
#[async_trait]
pub trait IngressSink: Send + Sync {
    /// Stores one message's drafts under the source's message id; returns
    /// once they are durable. An `Err` means nothing was stored and the
    /// message must not be acknowledged (the store is unavailable).
    async fn message(&self, message_id: Option<String>, drafts: Vec<RecordDraft>) -> Result<Stored, String>;
}

/// A connection to one source. `run` returns when the link fails (with
/// why) and the supervisor calls it again after a back-off; it is cancelled
/// by dropping its future, so it acknowledges only what the sink stored.
#[async_trait]
pub trait Ingress: Send {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String>;
}

/// Makes the receiver for one integration from its settings.
/// `globals`: the organization's values, for templated properties.
pub type BuildIngress = fn(&Integration, &Metadata, &EgressContext) -> Result<Box<dyn Ingress>, BuildError>;
