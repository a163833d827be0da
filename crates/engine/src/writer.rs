//! The writer: ingest and delivery results are written by one task, in
//! rounds (claims, resends and configuration write beside it, taking turns). A round takes every ingest request waiting and every delivery
//! result waiting, writes them in one transaction (one sync to disk for all
//! the records), answers each request, and hands the new deliveries straight
//! to their integration's worker, leased, so they need no claim. Under load
//! rounds grow; when idle, a request is written alone at once.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_core::{now_ms, DeliveryStatus, IntegrationId, OrgId};
use switchyard_store::{Batch, Claimed, Completion, IngestOutcome, NewRecord, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dispatcher::{Wake, Workers};

/// Records per round at most.
const MAX_RECORDS: usize = 5000;
/// Delivery results per round at most.
const MAX_RESULTS: usize = 1000;

struct Job {
    batch: Batch,
    done: oneshot::Sender<Result<IngestOutcome, StoreError>>,
}

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

/// What the writer runs on.
pub(crate) struct Parts {
    pub store: std::sync::Arc<dyn Store>,
    pub workers: Workers,
    pub wake: Wake,
    pub results: mpsc::UnboundedReceiver<Completion>,
    /// Cancelled once the dispatcher has stopped and every result is in the channel.
    pub flushed: CancellationToken,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Writer {
    pub(crate) fn start(parts: Parts, tracker: &TaskTracker) -> Self {
        let (queue, jobs) = mpsc::channel::<Job>(4096);
        // Its own thread: the round trips to the database are answered at
        // once, not after the tasks queued on the shared runtime.
        let (stopped, finished) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        std::thread::Builder::new()
            .name("switchyard-writer".into())
            .spawn(move || {
                runtime.block_on(run(parts, jobs));
                let _ = stopped.send(());
            })
            .expect("a thread");
        tracker.spawn(async move {
            let _ = finished.await;
        });
        Self { queue }
    }

    /// Returns once the records and their deliveries are committed.
    pub(crate) async fn ingest(&self, batch: Batch) -> Result<IngestOutcome, StoreError> {
        self.submit(batch).await?.await
    }

    /// Queues the batch for a round (batches are written in the order they
    /// are queued); the returned future resolves once it is committed.
    pub(crate) async fn submit(
        &self,
        batch: Batch,
    ) -> Result<impl std::future::Future<Output = Result<IngestOutcome, StoreError>>, StoreError> {
        let (done, answer) = oneshot::channel();
        let gone = || StoreError::Corrupt("the writer stopped".into());
        self.queue.send(Job { batch, done }).await.map_err(|_| gone())?;
        Ok(async move { answer.await.map_err(|_| gone())? })
    }
}

async fn run(parts: Parts, mut jobs: mpsc::Receiver<Job>) {
    let Parts { store, workers, wake, mut results, flushed, metrics } = parts;
    let round = Round { store: &*store, workers: &workers, wake: &wake, metrics: &metrics };
    let mut jobs_open = true;
    // Results a failed round could not write: retried first, never dropped.
    let mut carried: Vec<Completion> = Vec::new();
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut batch = Vec::new();
        let mut done = std::mem::take(&mut carried);
        let mut last = false;
        if done.is_empty() {
            tokio::select! {
                biased;
                job = jobs.recv(), if jobs_open => match job {
                    Some(job) => batch.push(job),
                    None => jobs_open = false,
                },
                Some(result) = results.recv() => done.push(result),
                _ = flushed.cancelled() => last = true,
            }
        }
        let mut count: usize = batch.iter().map(|j| j.batch.records.len().max(1)).sum();
        while count < MAX_RECORDS {
            match jobs.try_recv() {
                Ok(job) => {
                    count += job.batch.records.len().max(1);
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        while done.len() < MAX_RESULTS {
            match results.try_recv() {
                Ok(r) => done.push(r),
                Err(_) => break,
            }
        }
        if let Err(unwritten) = round.write(batch, done).await {
            tracing::error!(count = unwritten.len(), "recording delivery results failed; retrying");
            carried = unwritten;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        } else {
            backoff = Duration::from_millis(50);
        }
        if last && carried.is_empty() && results.is_empty() {
            break;
        }
    }
}

/// How many new deliveries of the round go to each integration (of which organization).
fn wanted(jobs: &[Job]) -> HashMap<(&OrgId, IntegrationId), usize> {
    let mut wanted: HashMap<(&OrgId, IntegrationId), usize> = HashMap::new();
    for job in jobs {
        for t in job.batch.records.iter().flat_map(|r| &r.targets) {
            *wanted.entry((&job.batch.org, t.integration_id.clone())).or_default() += 1;
        }
    }
    wanted
}

/// Leases, in the round's order, as many of each integration's new
/// deliveries as its worker granted room for; the rest stay unleased, for a
/// claim, behind them.
fn lease_admitted(jobs: &mut [Job], granted: &HashMap<IntegrationId, usize>, lease_until: i64) {
    let mut left = granted.clone();
    for job in jobs.iter_mut() {
        for t in job.batch.records.iter_mut().flat_map(|r| r.targets.iter_mut()) {
            if let Some(n) = left.get_mut(&t.integration_id).filter(|n| **n > 0) {
                *n -= 1;
                t.lease_until = lease_until;
            }
        }
    }
}

struct Round<'a> {
    store: &'a dyn Store,
    workers: &'a Workers,
    wake: &'a Wake,
    metrics: &'a crate::metrics::Metrics,
}

impl Round<'_> {
    /// Writes one round; on failure returns the results it could not record.
    async fn write(&self, mut jobs: Vec<Job>, results: Vec<Completion>) -> Result<(), Vec<Completion>> {
        if jobs.is_empty() && results.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let reserved = self.admit(&mut jobs, now);
        let batches: Vec<Batch> = jobs
            .iter_mut()
            .map(|j| Batch {
                org: j.batch.org.clone(),
                records: std::mem::take(&mut j.batch.records),
                message: j.batch.message.take(),
                fence: j.batch.fence.take(),
            })
            .collect();
        let retrying = results.iter().any(|c| c.status == DeliveryStatus::Retrying);
        let started = std::time::Instant::now();
        let written = self.store.write(&batches, &results, now).await;
        self.metrics.round(started.elapsed());
        match written {
            Ok(outcomes) => {
                let waiting = self.hand_over(batches, &outcomes, now);
                if waiting || retrying {
                    self.wake.wake();
                }
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.done.send(Ok(outcome));
                }
                Ok(())
            }
            Err(e) => {
                for (integration, n) in reserved {
                    self.workers.release(&integration, n);
                }
                self.wake.wake();
                if jobs.len() == 1 && results.is_empty() {
                    let _ = jobs.remove(0).done.send(Err(e));
                    return Ok(());
                }
                // One bad request must fail neither the others nor the results:
                // each request alone (its deliveries left to a claim), then the results.
                for (job, mut batch) in jobs.into_iter().zip(batches) {
                    for t in batch.records.iter_mut().flat_map(|r| r.targets.iter_mut()) {
                        t.lease_until = 0;
                    }
                    let _ = job.done.send(self.store.ingest(&[batch], now).await.map(|mut o| o.remove(0)));
                }
                if results.is_empty() {
                    return Ok(());
                }
                self.store.complete(&results).await.map_err(|_| results)
            }
        }
    }

    /// Reserves worker room for the round's deliveries and leases those
    /// admitted; returns the reservations per integration.
    fn admit(&self, jobs: &mut [Job], now: i64) -> HashMap<IntegrationId, usize> {
        let mut granted: HashMap<IntegrationId, usize> = HashMap::new();
        for ((org, integration), n) in wanted(jobs) {
            let taken = self.workers.admit(org, &integration, n);
            if taken > 0 {
                granted.insert(integration, taken);
            }
        }
        lease_admitted(jobs, &granted, now + self.workers.lease().as_millis() as i64);
        granted
    }

    /// Queues the stored, leased deliveries on their workers and gives back
    /// the room of those not stored (duplicates); returns whether any new
    /// delivery was left to a claim. The records move to the workers as they
    /// are, parsed, so no worker reads a body again.
    fn hand_over(&self, batches: Vec<Batch>, outcomes: &[IngestOutcome], now: i64) -> bool {
        let mut claimed = Vec::new();
        let mut waiting = false;
        for (Batch { org, records, .. }, outcome) in batches.into_iter().zip(outcomes) {
            for (i, r) in records.into_iter().enumerate() {
                let stored = !outcome.skipped.contains(&i);
                let NewRecord { record, body, targets, .. } = r;
                let mut leased = targets.iter().filter(|t| t.lease_until > 0).count();
                let record = (stored && leased > 0).then(|| Arc::new(record));
                let mut body = Some(body);
                for t in targets {
                    match (t.lease_until > 0, stored) {
                        (true, true) => {
                            leased -= 1;
                            // The last delivery of the record takes the body; others copy it.
                            let body = if leased == 0 { body.take() } else { body.clone() };
                            claimed.push(Claimed {
                                id: t.id,
                                org_id: org.clone(),
                                integration_id: t.integration_id,
                                attempts: 0,
                                retry_from: 0,
                                body: body.unwrap_or_default(),
                                record: record.clone(),
                                created_at: now,
                                lease_until: t.lease_until,
                            });
                        }
                        (true, false) => self.workers.release(&t.integration_id, 1),
                        (false, true) => waiting = true,
                        (false, false) => {}
                    }
                }
            }
        }
        self.workers.hand_over(claimed);
        waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{DeviceId, Record, RecordKind};
    use switchyard_store::NewDelivery;

    fn job(org: &OrgId, targets: &[&[&IntegrationId]]) -> Job {
        let records = targets
            .iter()
            .map(|ts| {
                let record = Record::new(RecordKind::Value, DeviceId::new(), "p".into(), 1, serde_json::json!(1));
                NewRecord::new(record, ts.iter().map(|i| NewDelivery::new((*i).clone())).collect())
            })
            .collect();
        Job { batch: Batch::new(org.clone(), records), done: oneshot::channel().0 }
    }

    fn leased(jobs: &[Job]) -> Vec<Vec<(String, bool)>> {
        jobs.iter()
            .flat_map(|j| &j.batch.records)
            .map(|r| r.targets.iter().map(|t| (t.integration_id.to_string(), t.lease_until > 0)).collect())
            .collect()
    }

    #[test]
    fn a_round_counts_what_each_integration_wants() {
        let (o1, o2) = (OrgId::new(), OrgId::new());
        let (a, b, c) = (IntegrationId::new(), IntegrationId::new(), IntegrationId::new());
        let jobs = [job(&o1, &[&[&a, &b], &[&a]]), job(&o2, &[&[&c], &[]])];
        let wanted = wanted(&jobs);
        assert_eq!(wanted.len(), 3);
        assert_eq!((wanted[&(&o1, a)], wanted[&(&o1, b)], wanted[&(&o2, c)]), (2, 1, 1));
    }

    #[test]
    fn only_the_granted_room_is_leased_oldest_first() {
        let org = OrgId::new();
        let (a, b) = (IntegrationId::new(), IntegrationId::new());
        let mut jobs = [job(&org, &[&[&a, &b], &[&a]]), job(&org, &[&[&a, &b]])];
        let granted: HashMap<IntegrationId, usize> = [(a.clone(), 2)].into();
        lease_admitted(&mut jobs, &granted, 99);
        let (a, b) = (a.to_string(), b.to_string());
        assert_eq!(
            leased(&jobs),
            [vec![(a.clone(), true), (b.clone(), false)], vec![(a.clone(), true)], vec![(a, false), (b, false)],],
            "a's first two deliveries are handed over; its third and every one of b (no room) wait for a claim"
        );
        assert!(jobs
            .iter()
            .flat_map(|j| &j.batch.records)
            .flat_map(|r| &r.targets)
            .all(|t| t.lease_until == 0 || t.lease_until == 99));
    }
}
