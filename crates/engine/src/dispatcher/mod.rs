//! The outbox dispatcher. One loop claims due deliveries (leased, so a crash
//! loses nothing: an unfinished lease runs out and the delivery is claimed
//! again) and hands them to one worker per integration, so a slow or dead
//! target never delays another. Workers send with bounded concurrency and
//! pass results to one writer that records them in batched transactions.
//!
//! - `registry`: the workers, their queues and memory budget, the circuits
//!   and the change counters;
//! - `leases`: the leases this node holds, renewed while it holds them;
//! - `claim`: the claim loop;
//! - `worker`: one integration's worker loop;
//! - `sender`: the one way to build an integration's sender;
//! - `attempt`: sending a unit and deciding what becomes of each delivery.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_connectors::EgressContext;
use switchyard_store::{Completion, Store};
use tokio::sync::{mpsc, Notify};

use crate::limits::BreakerConfig;
use crate::metrics::Metrics;

mod attempt;
mod claim;
mod leases;
mod registry;
mod sender;
mod worker;

pub(crate) use attempt::attempt;
pub(crate) use claim::spawn;
pub(crate) use registry::{Changes, QueueView, Workers};
pub use registry::{Circuits, QUEUE_OVERHEAD, RECORD_OVERHEAD};
pub(crate) use sender::{build as build_sender, SenderError};

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Deliveries claimed per round.
    pub claim_batch: usize,
    /// How long a claim holds a delivery; a node that dies lets go after this.
    pub lease: Duration,
    /// How often to look for due deliveries when nothing signals new work.
    pub poll: Duration,
    /// Requests in flight per integration.
    pub concurrency: usize,
    /// Deliveries held in memory per integration; beyond it, its new
    /// deliveries and its claims wait in the outbox.
    pub max_queued: usize,
    /// Memory the queues of all integrations together may hold, as
    /// `queued_size` counts it. Beyond it, new deliveries
    /// wait in the outbox and no more are claimed until the queues drain.
    pub max_queued_bytes: usize,
    /// How long a worker trusts its copy of the integration's settings.
    pub reload_after: Duration,
    /// When an integration's circuit opens, and for how long.
    pub breaker: BreakerConfig,
    /// Multiplies the retry schedule's delays: 1.0 in production; tests use
    /// a tiny value to walk the whole schedule in seconds.
    pub retry_scale: f64,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            claim_batch: 512,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(250),
            concurrency: 32,
            max_queued: 65_536,
            max_queued_bytes: 64 << 20,
            reload_after: Duration::from_secs(5),
            retry_scale: 1.0,
            breaker: BreakerConfig::default(),
        }
    }
}

/// Wakes the dispatcher when new deliveries are stored.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// What the dispatcher runs on.
pub(crate) struct Parts {
    pub store: Arc<dyn Store>,
    pub ctx: EgressContext,
    pub config: DispatcherConfig,
    pub wake: Wake,
    pub circuits: Circuits,
    pub metrics: Arc<Metrics>,
    pub changes: Changes,
    /// Where results go (the writer).
    pub done: mpsc::UnboundedSender<Completion>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
