//! The outbox dispatcher. One loop claims due deliveries (leased, so a crash
//! loses nothing: an unfinished lease runs out and the delivery is claimed
//! again) and hands them to one worker per integration, so a slow or dead
//! target never delays another. Workers send with bounded concurrency and
//! pass results to one writer that records them in batched transactions.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use switchyard_connectors::{Egress, EgressContext, Outbound, Outcome, SendResult};
use switchyard_core::delivery::{excerpt, RESPONSE_EXCERPT_MAX};
use switchyard_core::{
    now_ms, Attempt, AttemptOutcome, DeliveryId, DeliveryStatus, IntegrationId, OrgId, Record, RecordKind,
};
use switchyard_store::{Claimed, Completion, Store};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::{Breaker, BreakerConfig, CircuitState, Permit, TokenBucket};
use crate::metrics::{IntegrationMetrics, Metrics};
use crate::retry;

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

/// A counter per integration, bumped when its settings or recipients change,
/// so its worker rebuilds its sender before the next send, not within seconds.
#[derive(Clone, Default)]
pub(crate) struct Changes(Arc<Mutex<HashMap<IntegrationId, Arc<AtomicU64>>>>);

impl Changes {
    fn counter(&self, id: &IntegrationId) -> Arc<AtomicU64> {
        lock(&self.0).entry(id.clone()).or_default().clone()
    }

    pub(crate) fn bump(&self, id: &IntegrationId) {
        self.counter(id).fetch_add(1, Ordering::Relaxed);
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
pub(crate) fn queued_size(d: &Claimed) -> usize {
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
    fn open(&self) -> Vec<IntegrationId> {
        let now = Instant::now();
        lock(&self.0).iter().filter(|(_, b)| lock(b).cooling_down(now)).map(|(id, _)| id.clone()).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The leases this node holds on deliveries queued in its workers or being
/// sent, kept alive by the claim loop: a delivery that waits in a queue
/// longer than a lease lasts is not claimed a second time. One whose renewal
/// the store refuses (its lease ran out and it was claimed again, here or on
/// another node) is dropped where it waits.
#[derive(Clone, Default)]
pub(crate) struct Leases(Arc<Mutex<HashMap<DeliveryId, i64>>>);

impl Leases {
    fn hold(&self, d: &Claimed) {
        lock(&self.0).insert(d.id.clone(), d.lease_until);
    }

    fn holds(&self, id: &DeliveryId) -> bool {
        lock(&self.0).contains_key(id)
    }

    fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a DeliveryId>) {
        let mut map = lock(&self.0);
        for id in ids {
            map.remove(id);
        }
    }

    /// Renews every lease with less than half of `lease` left.
    async fn renew(&self, store: &dyn Store, lease: Duration) {
        let now = now_ms();
        let lease = lease.as_millis() as i64;
        let due: Vec<(DeliveryId, i64)> = lock(&self.0)
            .iter()
            .filter(|(_, until)| **until - now < lease / 2)
            .map(|(id, u)| (id.clone(), *u))
            .collect();
        if due.is_empty() {
            return;
        }
        let until = now + lease;
        let renewed = match store.renew_leases(&due, until).await {
            Ok(renewed) => renewed.into_iter().collect::<std::collections::HashSet<_>>(),
            Err(e) => {
                tracing::error!(error = %e, "renewing leases failed; retrying at the next renewal");
                return;
            }
        };
        let mut map = lock(&self.0);
        let mut lost = 0;
        for (id, held) in &due {
            // Sent meanwhile (gone), or renewed already: nothing to do.
            let Some(current) = map.get_mut(id).filter(|c| **c == *held) else { continue };
            if renewed.contains(id) {
                *current = until;
            } else {
                map.remove(id);
                lost += 1;
            }
        }
        if lost > 0 {
            tracing::warn!(lost, "leases ran out while their deliveries were queued; the outbox has them again");
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

/// One worker per integration, shared by the claim loop and the writer:
/// the writer hands deliveries it has just stored straight to their worker
/// (leased already, so they need no claim), as long as the worker has room
/// and nothing of its integration waits in the outbox before them.
#[derive(Clone)]
pub(crate) struct Workers(Arc<WorkersInner>);

struct WorkersInner {
    map: Mutex<HashMap<IntegrationId, Worker>>,
    parts: Parts,
    /// Sends in flight, across workers.
    sends: TaskTracker,
    leases: Leases,
    /// Memory held by every worker's queue (`queued_size` of each delivery).
    queued_bytes: Arc<AtomicUsize>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// The runtime workers run on, whichever thread starts them (the writer has its own).
    runtime: tokio::runtime::Handle,
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

struct Worker {
    queue: mpsc::UnboundedSender<Claimed>,
    /// Deliveries queued or being sent, plus room reserved by the writer.
    queued: Arc<AtomicUsize>,
    /// Some of its due deliveries wait in the outbox: new ones queue behind them there.
    backlog: bool,
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
    fn over_budget(&self) -> bool {
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
    fn dispatch(&self, claimed: Vec<Claimed>) {
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
    fn busy(&self) -> Vec<IntegrationId> {
        let max = self.0.parts.config.max_queued;
        lock(&self.0.map)
            .iter()
            .filter(|(_, w)| w.queued.load(Ordering::Relaxed) >= max)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A claim took every due delivery but those of `skipped`: nothing of the
    /// others waits in the outbox, so their new deliveries may be handed over again.
    fn caught_up(&self, skipped: &[IntegrationId]) {
        for (id, w) in lock(&self.0.map).iter_mut() {
            if !skipped.contains(id) {
                w.backlog = false;
            }
        }
    }

    /// Stops every worker (what they hold stays leased in the outbox) and
    /// waits for the sends in flight.
    async fn stop(&self) {
        lock(&self.0.map).clear();
        self.0.sends.close();
        self.0.sends.wait().await;
    }
}

/// Runs the claim loop; `flushed` is cancelled once it has stopped and every
/// send in flight has passed its result on.
pub(crate) fn spawn(workers: Workers, flushed: CancellationToken) {
    let inner = workers.0.clone();
    let Parts { store, config, wake, circuits, .. } = &inner.parts;
    let (store, config, wake, circuits) = (store.clone(), config.clone(), wake.clone(), circuits.clone());
    let (shutdown, leases) = (inner.shutdown.clone(), inner.leases.clone());
    inner.tracker.spawn(async move {
        // Renewing every quarter lease the leases with less than half left
        // keeps each above a quarter, without scanning them at every claim.
        let mut renewed_at: Option<Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // First keep what this node holds: a claim must not take it again.
            if renewed_at.is_none_or(|at| at.elapsed() >= config.lease / 4) {
                leases.renew(&*store, config.lease).await;
                renewed_at = Some(Instant::now());
            }
            if workers.over_budget() {
                // The queues hold all they may: claim again once they drain.
                tokio::select! {
                    _ = wake.0.notified() => {}
                    _ = tokio::time::sleep(config.poll) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let mut skipped = workers.busy();
            skipped.extend(circuits.open());
            let now = now_ms();
            let lease_until = now + config.lease.as_millis() as i64;
            let claimed = match store.claim_due(now, lease_until, config.claim_batch, &skipped).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "claiming deliveries failed");
                    Vec::new()
                }
            };
            let full = claimed.len() == config.claim_batch;
            if !full {
                workers.caught_up(&skipped);
            }
            workers.dispatch(claimed);
            if full {
                continue;
            }
            tokio::select! {
                _ = wake.0.notified() => {}
                _ = tokio::time::sleep(config.poll) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Graceful stop: no new claims; let the sends in flight finish and pass their results on.
        workers.stop().await;
        flushed.cancel();
        tracing::info!("dispatcher stopped");
    });
}

fn start_worker(inner: &WorkersInner, org: &OrgId, integration: &IntegrationId) -> Worker {
    let (queue, mut rx) = mpsc::unbounded_channel::<Claimed>();
    let queued = Arc::new(AtomicUsize::new(0));
    let (org, integration) = (org.clone(), integration.clone());
    let counter = queued.clone();
    let shutdown = inner.shutdown.clone();
    let Parts { store, ctx, config, wake, circuits, metrics, changes, done } = &inner.parts;
    let (store, ctx, config, wake, done) = (store.clone(), ctx.clone(), config.clone(), wake.clone(), done.clone());
    let breaker = circuits.of(&integration, config.breaker);
    let changes = changes.counter(&integration);
    let metrics = metrics.for_integration(&integration);
    let sends = inner.sends.clone();
    let (leases, queued_bytes) = (inner.leases.clone(), inner.queued_bytes.clone());
    inner.runtime.spawn(inner.tracker.track_future(async move {
        let low_water = config.max_queued / 2;
        let limit = Arc::new(Semaphore::new(config.concurrency));
        let mut sender: Option<Loaded> = None;
        let mut bucket: Option<TokenBucket> = None;
        while let Some(first) = rx.recv().await {
            queued_bytes.fetch_sub(queued_size(&first), Ordering::Relaxed);
            if shutdown.is_cancelled() {
                // Stopping: only sends already under way finish; the rest stay in the outbox.
                leases.forget([&first.id]);
                counter.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            let version = changes.load(Ordering::Relaxed);
            if sender.as_ref().is_none_or(|s| s.at.elapsed() > config.reload_after || s.version != version) {
                sender = load_sender(&store, &ctx, &org, &integration, sender.take()).await;
                if let Some(s) = sender.as_mut() {
                    s.version = version;
                }
                let rate = sender.as_ref().and_then(|s| s.egress.rate_limit());
                if bucket.as_ref().map(TokenBucket::rate) != rate {
                    bucket = rate.map(|r| TokenBucket::new(r, Instant::now()));
                }
            }
            let Some(egress) = sender.as_ref().map(|s| s.egress.clone()) else {
                // Deleted or disabled: the lease runs out and the delivery waits in the outbox.
                leases.forget([&first.id]);
                counter.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            // A batching integration gathers up to its batch size, waiting at most its linger.
            let mut unit = vec![first];
            if let Some((size, linger)) = egress.batching() {
                let deadline = tokio::time::Instant::now() + linger;
                while unit.len() < size {
                    let next = match rx.try_recv() {
                        Ok(d) => d,
                        Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(d)) => d,
                            _ => break,
                        },
                    };
                    queued_bytes.fetch_sub(queued_size(&next), Ordering::Relaxed);
                    unit.push(next);
                }
            }
            let n = unit.len();
            // Lost while queued: not this node's to send (see `Leases`).
            unit.retain(|d| leases.holds(&d.id));
            if unit.is_empty() {
                counter.fetch_sub(n, Ordering::Relaxed);
                continue;
            }
            let permit = lock(&breaker).permit(Instant::now());
            if let Permit::Wait(wait) = permit {
                // Open circuit: back to the outbox, due when the cooldown ends; no attempt is spent.
                let until = now_ms() + wait.as_millis() as i64;
                let ids: Vec<_> = unit.iter().map(|d| d.id.clone()).collect();
                if let Err(e) = store.postpone(&ids, until).await {
                    tracing::error!(error = %e, "postponing deliveries failed; their leases will run out");
                }
                leases.forget(&ids);
                counter.fetch_sub(n, Ordering::Relaxed);
                continue;
            }
            if let Some(bucket) = bucket.as_mut() {
                // The rate limit (requests per second) delays; it never drops.
                let wait = bucket.take(Instant::now());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let slot = limit.clone().acquire_owned().await.expect("the semaphore is never closed");
            let (done, counter, store, breaker, metrics, wake) =
                (done.clone(), counter.clone(), store.clone(), breaker.clone(), metrics.clone(), wake.clone());
            let (org, scale, leases) = (org.clone(), config.retry_scale, leases.clone());
            let send = async move {
                // A lease lost while queued (the store said no to its renewal):
                // the outbox has that delivery again, for whoever claims it.
                let unit: Vec<Claimed> = unit.into_iter().filter(|d| leases.holds(&d.id)).collect();
                if unit.is_empty() {
                    if permit == Permit::Probe {
                        lock(&breaker).probe_not_sent();
                    }
                    let before = counter.fetch_sub(n, Ordering::Relaxed);
                    if before > low_water && before - n <= low_water {
                        wake.wake();
                    }
                    drop(slot);
                    return;
                }
                let results = attempt_unit(&*egress, &unit, scale).await;
                let failed = results.iter().any(|(_, o)| matches!(o, Outcome::Retry { .. }));
                lock(&breaker).record(failed, Instant::now());
                if results.iter().any(|(_, o)| matches!(o, Outcome::Reject { deactivate: true, .. })) {
                    deactivate(&*store, &org, &integration_of(&unit)).await;
                }
                for (delivery, (completion, _)) in unit.iter().zip(results) {
                    record_metrics(&metrics, delivery, &completion);
                    let _ = done.send(completion);
                }
                // The result is on its way to the writer, which ends the lease.
                leases.forget(unit.iter().map(|d| &d.id));
                // Half drained: claim more now rather than at the next poll.
                let before = counter.fetch_sub(n, Ordering::Relaxed);
                if before > low_water && before - n <= low_water {
                    wake.wake();
                }
                drop(slot);
            };
            if permit == Permit::Probe {
                // A half-open circuit's probe goes alone: its result decides what follows.
                send.await;
            } else {
                sends.spawn(send);
            }
        }
    }));
    Worker { queue, queued, backlog: false }
}

fn integration_of(unit: &[Claimed]) -> IntegrationId {
    unit[0].integration_id.clone()
}

/// A worker's sender and what it was built from: kept (with its connection,
/// for connection-based types) while neither the integration nor the globals change.
struct Loaded {
    at: Instant,
    /// The change counter when loaded.
    version: u64,
    updated_at: i64,
    globals: switchyard_core::Metadata,
    egress: Arc<dyn Egress>,
}

async fn load_sender(
    store: &Arc<dyn Store>,
    ctx: &EgressContext,
    org: &OrgId,
    id: &IntegrationId,
    current: Option<Loaded>,
) -> Option<Loaded> {
    let integration = match store.get_integration(org, id).await {
        Ok(Some(i)) if i.enabled => i,
        Ok(_) => return None,
        Err(e) => {
            tracing::error!(integration = %id, error = %e, "loading the integration failed");
            return None;
        }
    };
    let kind = switchyard_connectors::find(&integration.type_key)?;
    let globals = match store.get_globals(org).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(integration = %id, error = %e, "loading the globals failed");
            return None;
        }
    };
    if let Some(mut current) = current.filter(|c| c.updated_at == integration.updated_at && c.globals == globals) {
        current.at = Instant::now();
        return Some(current);
    }
    let recipients = match kind.recipients {
        Some(_) => match store.active_recipients(org, id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(integration = %id, error = %e, "loading the recipients failed");
                return None;
            }
        },
        None => vec![],
    };
    match kind.build_egress(&integration, &globals, &recipients, ctx) {
        Ok(egress) => {
            let (at, updated_at) = (Instant::now(), integration.updated_at);
            Some(Loaded { at, version: 0, updated_at, globals, egress: Arc::from(egress) })
        }
        Err(e) => {
            tracing::warn!(integration = %id, error = %e, "the integration cannot send");
            None
        }
    }
}

async fn deactivate(store: &dyn Store, org: &OrgId, id: &IntegrationId) {
    match store.set_integration_enabled(org, id, false).await {
        Ok(_) => tracing::warn!(integration = %id, "410 Gone: the integration was disabled"),
        Err(e) => tracing::error!(integration = %id, error = %e, "disabling the integration failed"),
    }
}

/// Sends one delivery and decides what becomes of it.
pub(crate) async fn attempt(egress: &dyn Egress, delivery: &Claimed, retry_scale: f64) -> (Completion, Outcome) {
    attempt_unit(egress, std::slice::from_ref(delivery), retry_scale).await.remove(0)
}

/// Sends a unit of deliveries (one, or a batch) and decides what becomes of
/// each, in the unit's order. A batch goes as one request per record kind
/// (each kind may have its own route), and every delivery in it shares that
/// request's result.
pub(crate) async fn attempt_unit(
    egress: &dyn Egress,
    unit: &[Claimed],
    retry_scale: f64,
) -> Vec<(Completion, Outcome)> {
    let mut out: Vec<Option<(Completion, Outcome)>> = vec![None; unit.len()];
    let mut readable = Vec::with_capacity(unit.len());
    for (i, delivery) in unit.iter().enumerate() {
        let record = match &delivery.record {
            Some(record) => Ok(record.clone()),
            None => serde_json::from_str::<Record>(&delivery.body).map(Arc::new),
        };
        match record {
            Ok(record) => readable.push((i, delivery, record)),
            Err(e) => {
                let result = SendResult {
                    sent: None,
                    outcome: Outcome::Reject {
                        reason: format!("the stored record cannot be read: {e}"),
                        deactivate: false,
                    },
                    response: Default::default(),
                    target: String::new(),
                };
                out[i] = Some((decide(delivery, &result, now_ms(), 0, retry_scale), result.outcome));
            }
        }
    }
    for kind in RecordKind::ALL {
        let group: Vec<&(usize, &Claimed, Arc<Record>)> = readable.iter().filter(|(_, _, r)| r.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        let messages: Vec<Outbound<'_>> =
            group.iter().map(|(_, d, record)| Outbound { delivery_id: d.id.as_str(), record, body: &d.body }).collect();
        let started_at = now_ms();
        let clock = Instant::now();
        let result =
            if messages.len() == 1 { egress.send(&messages[0]).await } else { egress.send_batch(&messages).await };
        let duration_ms = clock.elapsed().as_millis() as i64;
        for (i, delivery, _) in group {
            out[*i] = Some((decide(delivery, &result, started_at, duration_ms, retry_scale), result.outcome.clone()));
        }
    }
    out.into_iter().map(|r| r.expect("every delivery of the unit has a result")).collect()
}

/// What becomes of a delivery after an attempt with this result.
fn decide(delivery: &Claimed, result: &SendResult, started_at: i64, duration_ms: i64, retry_scale: f64) -> Completion {
    let number = delivery.attempts + 1;
    let made_this_round = number - delivery.retry_from;
    let (outcome, status, next, error) = match &result.outcome {
        Outcome::Delivered => (AttemptOutcome::Delivered, DeliveryStatus::Succeeded, None, None),
        Outcome::Reject { reason, .. } => (AttemptOutcome::Rejected, DeliveryStatus::Dead, None, Some(reason.clone())),
        Outcome::Retry { after, reason } => {
            let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
            match retry::next_delay(made_this_round, *after, jitter) {
                Some(delay) => (
                    AttemptOutcome::Retry,
                    DeliveryStatus::Retrying,
                    Some(started_at + duration_ms + scaled(delay, *after, retry_scale).as_millis() as i64),
                    Some(reason.clone()),
                ),
                None => (AttemptOutcome::Retry, DeliveryStatus::Dead, None, Some(format!("{reason} (last attempt)"))),
            }
        }
    };
    Completion {
        id: delivery.id.clone(),
        attempt: Attempt {
            number,
            started_at,
            duration_ms,
            outcome,
            status_code: result.response.status,
            remote_id: result.response.remote_id.clone(),
            error: error.map(|e| excerpt(&e, RESPONSE_EXCERPT_MAX)),
            response_excerpt: result.response.excerpt.clone(),
            target: (!result.target.is_empty()).then(|| result.target.clone()),
            sent: result.sent.clone(),
        },
        status,
        next_attempt_at: next,
    }
}

fn record_metrics(metrics: &IntegrationMetrics, delivery: &Claimed, c: &Completion) {
    let outcome = match (c.attempt.outcome, c.status) {
        (AttemptOutcome::Delivered, _) => "delivered",
        (_, DeliveryStatus::Dead) if c.attempt.outcome == AttemptOutcome::Retry => "dead",
        (AttemptOutcome::Retry, _) => "retry",
        (AttemptOutcome::Rejected, _) => "rejected",
    };
    metrics.attempt(outcome, c.attempt.duration_ms as f64 / 1000.0);
    if c.status == DeliveryStatus::Succeeded {
        metrics.delivered(now_ms() - delivery.created_at);
    }
}

/// The schedule's delay times the scale; a far side's own `Retry-After` is kept as asked.
fn scaled(delay: Duration, retry_after: Option<Duration>, scale: f64) -> Duration {
    if retry_after.is_some() {
        delay
    } else {
        delay.mul_f64(scale)
    }
}
