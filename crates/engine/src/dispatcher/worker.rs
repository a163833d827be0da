//! One integration's worker: takes its queue in order, keeps its sender,
//! and sends each unit (a delivery or a batch) through the circuit, the
//! rate limit and the concurrency bound.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use switchyard_connectors::{Egress, EgressContext, Outcome};
use switchyard_core::{now_ms, IntegrationId, OrgId};
use switchyard_store::{Claimed, Completion, Store};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::attempt::{attempt_unit, record_metrics};
use super::leases::Leases;
use super::registry::{queued_size, Version, Worker, WorkersInner};
use super::sender::{deactivate, load_sender, Loaded};
use super::{lock, DispatcherConfig, Parts, Wake};
use crate::limits::{Breaker, Permit, TokenBucket};
use crate::metrics::IntegrationMetrics;

/// Starts the worker of one integration on the dispatcher's runtime.
pub(super) fn start_worker(inner: &WorkersInner, org: &OrgId, integration: &IntegrationId) -> Worker {
    let (queue, rx) = mpsc::unbounded_channel::<Claimed>();
    let queued = Arc::new(AtomicUsize::new(0));
    let Parts { store, ctx, config, wake, circuits, metrics, changes, done } = &inner.parts;
    let worker = Loop {
        org: org.clone(),
        integration: integration.clone(),
        store: store.clone(),
        ctx: ctx.clone(),
        config: config.clone(),
        wake: wake.clone(),
        done: done.clone(),
        breaker: circuits.of(integration, config.breaker),
        version: changes.version(org, integration),
        metrics: metrics.for_integration(integration),
        sends: inner.sends.clone(),
        leases: inner.leases.clone(),
        queued_bytes: inner.queued_bytes.clone(),
        counter: queued.clone(),
        shutdown: inner.shutdown.clone(),
        limit: Arc::new(Semaphore::new(config.concurrency)),
        sender: None,
        bucket: None,
    };
    inner.runtime.spawn(inner.tracker.track_future(worker.run(rx)));
    Worker { queue, queued, backlog: false }
}

/// A worker's state: what it shares with the dispatcher, and its own sender
/// and rate limit.
struct Loop {
    org: OrgId,
    integration: IntegrationId,
    store: Arc<dyn Store>,
    ctx: EgressContext,
    config: DispatcherConfig,
    wake: Wake,
    done: mpsc::UnboundedSender<Completion>,
    breaker: Arc<Mutex<Breaker>>,
    version: Version,
    metrics: IntegrationMetrics,
    sends: TaskTracker,
    leases: Leases,
    queued_bytes: Arc<AtomicUsize>,
    /// Deliveries queued or being sent (the worker's `queued`).
    counter: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    limit: Arc<Semaphore>,
    sender: Option<Loaded>,
    bucket: Option<TokenBucket>,
}

impl Loop {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Claimed>) {
        while let Some(first) = rx.recv().await {
            self.queued_bytes.fetch_sub(queued_size(&first), Ordering::Relaxed);
            if self.shutdown.is_cancelled() {
                // Stopping: only sends already under way finish; the rest stay in the outbox.
                self.let_go(&[first]);
                continue;
            }
            let Some(egress) = self.sender().await else {
                // Deleted or disabled: the lease runs out and the delivery waits in the outbox.
                self.let_go(&[first]);
                continue;
            };
            let unit = self.gather(first, &*egress, &mut rx).await;
            let n = unit.len();
            // Lost while queued: not this node's to send (see `Leases`).
            let unit: Vec<Claimed> = unit.into_iter().filter(|d| self.leases.holds(&d.id)).collect();
            if unit.is_empty() {
                self.counter.fetch_sub(n, Ordering::Relaxed);
                continue;
            }
            let permit = lock(&self.breaker).permit(Instant::now());
            if let Permit::Wait(wait) = permit {
                self.postpone(&unit, wait, n).await;
                continue;
            }
            if let Some(bucket) = self.bucket.as_mut() {
                // The rate limit (requests per second) delays; it never drops.
                let wait = bucket.take(Instant::now());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let slot = self.limit.clone().acquire_owned().await.expect("the semaphore is never closed");
            let send = self.send(egress, unit, n, permit, slot);
            if permit == Permit::Probe {
                // A half-open circuit's probe goes alone: its result decides what follows.
                send.await;
            } else {
                self.sends.spawn(send);
            }
        }
    }

    /// The sender, rebuilt when it is older than `reload_after` or what it
    /// was built from changed on this node.
    async fn sender(&mut self) -> Option<Arc<dyn Egress>> {
        let version = self.version.now();
        let stale =
            self.sender.as_ref().is_none_or(|s| s.at.elapsed() > self.config.reload_after || s.version != version);
        if stale {
            let current = self.sender.take();
            self.sender = load_sender(&self.store, &self.ctx, &self.org, &self.integration, current, version).await;
            let rate = self.sender.as_ref().and_then(|s| s.egress.rate_limit());
            if self.bucket.as_ref().map(TokenBucket::rate) != rate {
                self.bucket = rate.map(|r| TokenBucket::new(r, Instant::now()));
            }
        }
        self.sender.as_ref().map(|s| s.egress.clone())
    }

    /// The unit to send: `first`, and for a batching integration up to its
    /// batch size more, waiting at most its linger for them.
    async fn gather(
        &self,
        first: Claimed,
        egress: &dyn Egress,
        rx: &mut mpsc::UnboundedReceiver<Claimed>,
    ) -> Vec<Claimed> {
        let mut unit = vec![first];
        let Some((size, linger)) = egress.batching() else { return unit };
        let deadline = tokio::time::Instant::now() + linger;
        while unit.len() < size {
            let next = match rx.try_recv() {
                Ok(d) => d,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(d)) => d,
                    _ => break,
                },
            };
            self.queued_bytes.fetch_sub(queued_size(&next), Ordering::Relaxed);
            unit.push(next);
        }
        unit
    }

    /// Deliveries this worker will not send: their leases run out and the outbox has them.
    fn let_go(&self, unit: &[Claimed]) {
        self.leases.forget(unit.iter().map(|d| &d.id));
        self.counter.fetch_sub(unit.len(), Ordering::Relaxed);
    }

    /// An open circuit: back to the outbox, due when the cooldown ends; no attempt is spent.
    async fn postpone(&self, unit: &[Claimed], wait: std::time::Duration, n: usize) {
        let until = now_ms() + wait.as_millis() as i64;
        let ids: Vec<_> = unit.iter().map(|d| d.id.clone()).collect();
        if let Err(e) = self.store.postpone(&ids, until).await {
            tracing::error!(error = %e, "postponing deliveries failed; their leases will run out");
        }
        self.leases.forget(&ids);
        self.counter.fetch_sub(n, Ordering::Relaxed);
    }

    /// Sends a unit and passes its results to the writer; `n` is how many
    /// deliveries it counted for in the queue before lost leases were dropped.
    fn send(
        &self,
        egress: Arc<dyn Egress>,
        unit: Vec<Claimed>,
        n: usize,
        permit: Permit,
        slot: OwnedSemaphorePermit,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (done, counter, store, breaker) =
            (self.done.clone(), self.counter.clone(), self.store.clone(), self.breaker.clone());
        let (metrics, wake, org, leases) =
            (self.metrics.clone(), self.wake.clone(), self.org.clone(), self.leases.clone());
        let (scale, low_water, integration) =
            (self.config.retry_scale, self.config.max_queued / 2, self.integration.clone());
        async move {
            // A lease lost while queued (the store said no to its renewal):
            // the outbox has that delivery again, for whoever claims it.
            let unit: Vec<Claimed> = unit.into_iter().filter(|d| leases.holds(&d.id)).collect();
            if unit.is_empty() {
                if permit == Permit::Probe {
                    lock(&breaker).probe_not_sent();
                }
            } else {
                let results = attempt_unit(&*egress, &unit, scale).await;
                let failed = results.iter().any(|(_, o)| matches!(o, Outcome::Retry { .. }));
                lock(&breaker).record(failed, Instant::now());
                if results.iter().any(|(_, o)| matches!(o, Outcome::Reject { deactivate: true, .. })) {
                    deactivate(&*store, &org, &integration).await;
                }
                for (delivery, (completion, _)) in unit.iter().zip(results) {
                    record_metrics(&metrics, delivery, &completion);
                    let _ = done.send(completion);
                }
                // The result is on its way to the writer, which ends the lease.
                leases.forget(unit.iter().map(|d| &d.id));
            }
            // Half drained: claim more now rather than at the next poll.
            let before = counter.fetch_sub(n, Ordering::Relaxed);
            if before > low_water && before - n <= low_water {
                wake.wake();
            }
            drop(slot);
        }
    }
}
