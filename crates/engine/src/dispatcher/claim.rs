//! The claim loop: renew what this node holds, then claim due deliveries
//! for the workers with room.
use std::time::Instant;

use switchyard_core::now_ms;
use tokio_util::sync::CancellationToken;

use super::{Parts, Workers};

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
