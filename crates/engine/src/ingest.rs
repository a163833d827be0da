//! Group commit for ingest: requests queue their routed records here; one
//! writer takes every request waiting, stores them in one transaction (one
//! sync to disk for all) and answers each. Under load, commits grow; when
//! idle, a request is written alone at once.
use std::sync::Arc;

use switchyard_core::{now_ms, OrgId};
use switchyard_store::{IngestOutcome, NewRecord, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Records per commit at most.
const MAX_RECORDS: usize = 5000;

struct Job {
    org: OrgId,
    records: Vec<NewRecord>,
    done: oneshot::Sender<Result<IngestOutcome, StoreError>>,
}

#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        let (queue, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut count = first.records.len();
                let mut jobs = vec![first];
                while count < MAX_RECORDS {
                    match rx.try_recv() {
                        Ok(job) => {
                            count += job.records.len();
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                write(&*store, jobs).await;
            }
        });
        Self { queue }
    }

    /// Returns once the records and their deliveries are committed.
    pub(crate) async fn ingest(&self, org: OrgId, records: Vec<NewRecord>) -> Result<IngestOutcome, StoreError> {
        let (done, answer) = oneshot::channel();
        let gone = || StoreError::Corrupt("the ingest writer stopped".into());
        self.queue.send(Job { org, records, done }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn write(store: &dyn Store, jobs: Vec<Job>) {
    let batches: Vec<(OrgId, Vec<NewRecord>)> = jobs.iter().map(|j| (j.org.clone(), j.records.clone())).collect();
    match store.ingest(&batches, now_ms()).await {
        Ok(outcomes) => {
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.done.send(Ok(outcome));
            }
        }
        // One bad request must not fail the others: write each alone, so each gets its own answer.
        Err(_) if jobs.len() > 1 => {
            for job in jobs {
                let batch = [(job.org.clone(), job.records)];
                let _ = job.done.send(store.ingest(&batch, now_ms()).await.map(|mut o| o.remove(0)));
            }
        }
        Err(e) => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.done.send(Err(e));
            }
        }
    }
}
