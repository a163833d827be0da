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
use switchyard_core::{now_ms, Attempt, AttemptOutcome, DeliveryStatus, IntegrationId, OrgId, Record, RecordKind};
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
    /// Deliveries held in memory per integration; beyond it, its claims wait.
    pub max_queued: usize,
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
            max_queued: 1024,
            reload_after: Duration::from_secs(5),
            retry_scale: 1.0,
            breaker: BreakerConfig::default(),
        }
    }
}

struct Worker {
    queue: mpsc::UnboundedSender<Claimed>,
    queued: Arc<AtomicUsize>,
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
        lock(&self.0)
            .iter()
            .filter(|(_, b)| {
                let b = lock(b);
                b.state() == CircuitState::Open && matches!(b.clone().permit(now), Permit::Wait(_))
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
}

pub(crate) fn spawn(parts: Parts, shutdown: CancellationToken, tracker: TaskTracker) {
    let Parts { store, ctx, config, wake, circuits, metrics, changes } = parts;
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Completion>();
    tracker.spawn(write_completions(store.clone(), done_rx, wake.clone()));
    let sends = TaskTracker::new();
    let inner = tracker.clone();
    tracker.spawn(async move {
        let mut workers: HashMap<IntegrationId, Worker> = HashMap::new();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            workers.retain(|_, w| !w.queue.is_closed());
            let mut busy: Vec<IntegrationId> = workers
                .iter()
                .filter(|(_, w)| w.queued.load(Ordering::Relaxed) >= config.max_queued)
                .map(|(id, _)| id.clone())
                .collect();
            busy.extend(circuits.open());
            let now = now_ms();
            let claimed =
                match store.claim_due(now, now + config.lease.as_millis() as i64, config.claim_batch, &busy).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(error = %e, "claiming deliveries failed");
                        Vec::new()
                    }
                };
            let full = claimed.len() == config.claim_batch;
            for delivery in claimed {
                let worker = workers.entry(delivery.integration_id.clone()).or_insert_with(|| {
                    let shared = Shared {
                        wake: wake.clone(),
                        store: store.clone(),
                        ctx: ctx.clone(),
                        config: config.clone(),
                        done: done_tx.clone(),
                        sends: sends.clone(),
                        metrics: metrics.clone(),
                        changes: changes.counter(&delivery.integration_id),
                    };
                    start_worker(
                        shared,
                        &delivery,
                        circuits.of(&delivery.integration_id, config.breaker),
                        &inner,
                        &shutdown,
                    )
                });
                worker.queued.fetch_add(1, Ordering::Relaxed);
                let _ = worker.queue.send(delivery);
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = wake.0.notified() => {}
                _ = tokio::time::sleep(config.poll) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Graceful stop: no new claims; let the sends in flight finish and be recorded.
        drop(workers);
        sends.close();
        sends.wait().await;
        tracing::info!("dispatcher stopped");
    });
}

/// What every worker needs from the dispatcher.
struct Shared {
    wake: Wake,
    store: Arc<dyn Store>,
    ctx: EgressContext,
    config: DispatcherConfig,
    done: mpsc::UnboundedSender<Completion>,
    sends: TaskTracker,
    metrics: Arc<Metrics>,
    /// This integration's change counter.
    changes: Arc<AtomicU64>,
}

fn start_worker(
    shared: Shared,
    first: &Claimed,
    breaker: Arc<Mutex<Breaker>>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Worker {
    let (queue, mut rx) = mpsc::unbounded_channel::<Claimed>();
    let queued = Arc::new(AtomicUsize::new(0));
    let (org, integration) = (first.org_id.clone(), first.integration_id.clone());
    let counter = queued.clone();
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        let Shared { wake, store, ctx, config, done, sends, metrics, changes } = shared;
        let metrics = metrics.for_integration(&integration);
        let low_water = config.max_queued / 2;
        let limit = Arc::new(Semaphore::new(config.concurrency));
        let mut sender: Option<Loaded> = None;
        let mut bucket: Option<TokenBucket> = None;
        while let Some(first) = rx.recv().await {
            if shutdown.is_cancelled() {
                // Stopping: only sends already under way finish; the rest stay in the outbox.
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
                counter.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            // A batching integration gathers up to its batch size, waiting at most its linger.
            let mut unit = vec![first];
            if let Some((size, linger)) = egress.batching() {
                let deadline = tokio::time::Instant::now() + linger;
                while unit.len() < size {
                    match rx.try_recv() {
                        Ok(d) => unit.push(d),
                        Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(d)) => unit.push(d),
                            _ => break,
                        },
                    }
                }
            }
            let n = unit.len();
            let permit = lock(&breaker).permit(Instant::now());
            if let Permit::Wait(wait) = permit {
                // Open circuit: back to the outbox, due when the cooldown ends; no attempt is spent.
                let until = now_ms() + wait.as_millis() as i64;
                let ids: Vec<_> = unit.iter().map(|d| d.id.clone()).collect();
                if let Err(e) = store.postpone(&ids, until).await {
                    tracing::error!(error = %e, "postponing deliveries failed; their leases will run out");
                }
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
            let (org, scale) = (org.clone(), config.retry_scale);
            let send = async move {
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
    });
    Worker { queue, queued }
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
        match serde_json::from_str::<Record>(&delivery.body) {
            Ok(record) => readable.push((i, delivery, record)),
            Err(e) => {
                let result = SendResult {
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
        let group: Vec<&(usize, &Claimed, Record)> = readable.iter().filter(|(_, _, r)| r.kind == kind).collect();
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

/// Records completions in batches; a failed write is retried, never dropped
/// (until then the deliveries stay leased, and are sent again if we stop).
async fn write_completions(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Completion>, wake: Wake) {
    const BATCH: usize = 256;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut backoff = Duration::from_millis(50);
        while let Err(e) = store.complete(&batch).await {
            tracing::error!(error = %e, count = batch.len(), "recording delivery results failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        if batch.iter().any(|c| c.status == DeliveryStatus::Retrying) {
            wake.wake();
        }
    }
}
