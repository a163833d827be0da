//! The workers and what they share: one queue per integration with its
//! count, the memory all queues may hold, the circuits and the change
//! counters that make a worker rebuild its sender.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_core::{IntegrationId, OrgId};
use switchyard_store::Claimed;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::leases::Leases;
use super::worker::start_worker;
use super::{lock, Parts};
use crate::limits::{Breaker, BreakerConfig, CircuitState};

/// Change counters, bumped when what a sender is built from changes on this
/// node: an integration's settings or recipients, or an organization's
/// globals (which every sender of the organization renders with). A worker
/// rebuilds its sender before its next send when either count moved, not
/// only at its periodic check.
#[derive(Clone, Default)]
pub(crate) struct Changes {
    integrations: Arc<Mutex<HashMap<IntegrationId, Arc<AtomicU64>>>>,
    orgs: Arc<Mutex<HashMap<OrgId, Arc<AtomicU64>>>>,
}

/// One worker's view of the counters that concern it.
pub(super) struct Version(Arc<AtomicU64>, Arc<AtomicU64>);

impl Version {
    /// Moves whenever either count does (both only grow).
    pub(super) fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed).wrapping_add(self.1.load(Ordering::Relaxed))
    }
}

impl Changes {
    pub(super) fn version(&self, org: &OrgId, id: &IntegrationId) -> Version {
        Version(
            lock(&self.integrations).entry(id.clone()).or_default().clone(),
            lock(&self.orgs).entry(org.clone()).or_default().clone(),
        )
    }

    pub(crate) fn integration(&self, id: &IntegrationId) {
        lock(&self.integrations).entry(id.clone()).or_default().fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn globals(&self, org: &OrgId) {
        lock(&self.orgs).entry(org.clone()).or_default().fetch_add(1, Ordering::Relaxed);
    }
}

/// What a queued delivery costs beyond its body: its ids and bookkeeping.
pub const QUEUE_OVERHEAD: usize = 256;

/// What a handed-over delivery's parsed record costs beyond its body's
/// length: the struct and its reference count. Its strings and payload are
/// counted as the body's length again, which they do not exceed by much; a
/// record shared by several deliveries is counted for each, so the budget
/// errs high.
pub const RECORD_OVERHEAD: usize = std::mem::size_of::<switchyard_core::Record>() + 16;

/// What a delivery in a worker's queue holds in memory, as the queues'
/// budget counts it: the body's allocation (its capacity, which serializing
/// may leave at up to twice its length), not only its length.
pub(super) fn queued_size(d: &Claimed) -> usize {
    let record = d.record.as_ref().map_or(0, |_| d.body.len() + RECORD_OVERHEAD);
    d.body.capacity() + QUEUE_OVERHEAD + record
}

/// Every integration's circuit breaker, shared with the API (which shows its state).
#[derive(Clone, Default)]
pub struct Circuits(Arc<Mutex<HashMap<IntegrationId, Arc<Mutex<Breaker>>>>>);

impl Circuits {
    pub(crate) fn of(&self, id: &IntegrationId, config: BreakerConfig) -> Arc<Mutex<Breaker>> {
        lock(&self.0)
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Breaker::new(config, Instant::now()))))
            .clone()
    }

    pub fn get(&self, id: &IntegrationId) -> Option<Breaker> {
        lock(&self.0).get(id).map(|b| lock(b).clone())
    }

    /// Every known circuit's state.
    pub(crate) fn states(&self) -> Vec<(IntegrationId, CircuitState)> {
        lock(&self.0).iter().map(|(id, b)| (id.clone(), lock(b).state())).collect()
    }

    /// Integrations whose circuit is open and cooling down: not worth claiming for.
    pub(super) fn open(&self) -> Vec<IntegrationId> {
        let now = Instant::now();
        lock(&self.0).iter().filter(|(_, b)| lock(b).cooling_down(now)).map(|(id, _)| id.clone()).collect()
    }
}

/// One worker per integration, shared by the claim loop and the writer:
/// the writer hands deliveries it has just stored straight to their worker
/// (leased already, so they need no claim), as long as the worker has room
/// and nothing of its integration waits in the outbox before them.
#[derive(Clone)]
pub(crate) struct Workers(pub(super) Arc<WorkersInner>);

pub(super) struct WorkersInner {
    pub(super) map: Mutex<HashMap<IntegrationId, Worker>>,
    pub(super) parts: Parts,
    /// Sends in flight, across workers.
    pub(super) sends: TaskTracker,
    pub(super) leases: Leases,
    /// Memory held by every worker's queue (`queued_size` of each delivery).
    pub(super) queued_bytes: Arc<AtomicUsize>,
    pub(super) tracker: TaskTracker,
    pub(super) shutdown: CancellationToken,
    /// The runtime workers run on, whichever thread starts them (the writer has its own).
    pub(super) runtime: tokio::runtime::Handle,
}

/// What the worker queues hold, read at scrape time (empty once stopped).
pub(crate) struct QueueView(std::sync::Weak<WorkersInner>);

impl QueueView {
    pub(crate) fn queues(&self) -> crate::metrics::Queues {
        let Some(inner) = self.0.upgrade() else {
            return crate::metrics::Queues { per_integration: vec![], bytes: 0, budget: 0 };
        };
        let per_integration =
            lock(&inner.map).iter().map(|(id, w)| (id.clone(), w.queued.load(Ordering::Relaxed))).collect();
        crate::metrics::Queues {
            per_integration,
            bytes: inner.queued_bytes.load(Ordering::Relaxed),
            budget: inner.parts.config.max_queued_bytes,
        }
    }
}

pub(super) struct Worker {
    pub(super) queue: mpsc::UnboundedSender<Claimed>,
    /// Deliveries queued or being sent, plus room reserved by the writer.
    pub(super) queued: Arc<AtomicUsize>,
    /// Some of its due deliveries wait in the outbox: new ones queue behind them there.
    pub(super) backlog: bool,
}

impl Workers {
    pub(crate) fn new(parts: Parts, tracker: &TaskTracker, shutdown: &CancellationToken) -> Self {
        Workers(Arc::new(WorkersInner {
            map: Mutex::new(HashMap::new()),
            parts,
            sends: TaskTracker::new(),
            leases: Leases::default(),
            queued_bytes: Arc::default(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    /// How long a handed-over delivery is leased for.
    pub(crate) fn lease(&self) -> Duration {
        self.0.parts.config.lease
    }

    fn worker<'m>(
        &self,
        map: &'m mut HashMap<IntegrationId, Worker>,
        org: &OrgId,
        integration: &IntegrationId,
    ) -> &'m mut Worker {
        map.entry(integration.clone()).or_insert_with(|| start_worker(&self.0, org, integration))
    }

    /// Reserves room for up to `n` new deliveries of the integration, to be
    /// handed over once stored; returns how many it may take: none while the
    /// node stops, while its circuit is open, or while older deliveries of it
    /// wait in the outbox (which then keeps the rest, in order).
    pub(crate) fn admit(&self, org: &OrgId, integration: &IntegrationId, n: usize) -> usize {
        let inner = &self.0;
        if inner.shutdown.is_cancelled() {
            return 0;
        }
        let open = lock(&inner.parts.circuits.of(integration, inner.parts.config.breaker)).cooling_down(Instant::now());
        let mut map = lock(&inner.map);
        let worker = self.worker(&mut map, org, integration);
        let room = if self.over_budget() {
            0
        } else {
            inner.parts.config.max_queued.saturating_sub(worker.queued.load(Ordering::Relaxed))
        };
        let taken = if open || worker.backlog { 0 } else { n.min(room) };
        if taken < n {
            worker.backlog = true;
        }
        worker.queued.fetch_add(taken, Ordering::Relaxed);
        taken
    }

    /// A view of the queues for the metrics. It does not keep the workers
    /// alive: they stop when the dispatcher and the writer let them go.
    pub(crate) fn view(&self) -> QueueView {
        QueueView(Arc::downgrade(&self.0))
    }

    /// Whether the queues together hold all the memory they may.
    pub(super) fn over_budget(&self) -> bool {
        self.0.queued_bytes.load(Ordering::Relaxed) >= self.0.parts.config.max_queued_bytes
    }

    /// Gives back room `admit` reserved that will not be used.
    pub(crate) fn release(&self, integration: &IntegrationId, n: usize) {
        if let Some(w) = lock(&self.0.map).get(integration) {
            w.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Queues stored deliveries whose room `admit` reserved.
    pub(crate) fn hand_over(&self, deliveries: Vec<Claimed>) {
        let map = lock(&self.0.map);
        for d in deliveries {
            // Gone only when stopping: the lease keeps it for the next start.
            if let Some(w) = map.get(&d.integration_id) {
                self.0.leases.hold(&d);
                self.0.queued_bytes.fetch_add(queued_size(&d), Ordering::Relaxed);
                let _ = w.queue.send(d);
            }
        }
    }

    /// Queues claimed deliveries.
    pub(super) fn dispatch(&self, claimed: Vec<Claimed>) {
        let mut map = lock(&self.0.map);
        for d in claimed {
            let worker = self.worker(&mut map, &d.org_id, &d.integration_id);
            worker.queued.fetch_add(1, Ordering::Relaxed);
            self.0.leases.hold(&d);
            self.0.queued_bytes.fetch_add(queued_size(&d), Ordering::Relaxed);
            let _ = worker.queue.send(d);
        }
    }

    /// Integrations whose queue is full.
    pub(super) fn busy(&self) -> Vec<IntegrationId> {
        let max = self.0.parts.config.max_queued;
        lock(&self.0.map)
            .iter()
            .filter(|(_, w)| w.queued.load(Ordering::Relaxed) >= max)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A claim took every due delivery but those of `skipped`: nothing of the
    /// others waits in the outbox, so their new deliveries may be handed over again.
    pub(super) fn caught_up(&self, skipped: &[IntegrationId]) {
        for (id, w) in lock(&self.0.map).iter_mut() {
            if !skipped.contains(id) {
                w.backlog = false;
            }
        }
    }

    /// Stops every worker (what they hold stays leased in the outbox) and
    /// waits for the sends in flight.
    pub(super) async fn stop(&self) {
        lock(&self.0.map).clear();
        self.0.sends.close();
        self.0.sends.wait().await;
    }
}
