//! Retention: finished deliveries (with their attempts), records no
//! delivery needs and ingress message log entries are deleted once older
//! than the retention period, in small batches with pauses between them, so
//! delivery never waits on a purge.
use std::sync::Arc;
use std::time::Duration;

use switchyard_core::now_ms;
use switchyard_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const BATCH: usize = 1000;
const PAUSE: Duration = Duration::from_millis(50);

pub(crate) fn spawn(
    store: Arc<dyn Store>,
    keep: Duration,
    every: Duration,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        loop {
            let before = now_ms() - keep.as_millis() as i64;
            let (mut deliveries, mut records, mut messages) = (0, 0, 0);
            loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let purged = match store.purge(before, BATCH).await {
                    Ok((d, r)) => store.purge_messages(before, BATCH).await.map(|m| (d, r, m)),
                    Err(e) => Err(e),
                };
                match purged {
                    Ok((d, r, m)) => {
                        deliveries += d;
                        records += r;
                        messages += m;
                        if d < BATCH as u64 && r < BATCH as u64 && m < BATCH as u64 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "retention purge failed; will try again");
                        break;
                    }
                }
                tokio::time::sleep(PAUSE).await;
            }
            if deliveries + records + messages > 0 {
                tracing::info!(deliveries, records, messages, "retention purge");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
}
