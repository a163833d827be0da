//! The receiver every polled type runs: its schedule, its polls page by
//! page, and its backfills between them (see the module above).
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_core::now_ms;

use super::{Ask, Fetched, OpenPoll, Page, PollError, PollState, Schedule, Source, Window, MAX_PAGES, PROGRESS};
use crate::ingress::{store_batch, Ingress, IngressSink, LinkEvent, PollOutcome, PollReport};

/// The most a retry waits, even when the source asks for longer.
const RETRY_MAX: Duration = Duration::from_secs(15 * 60);

/// A backfill as it runs: an action's range, and how far it got (its
/// progress, kept in the action: a restart resumes there).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Backfill {
    /// The action's id.
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub from: i64,
    #[serde(skip)]
    pub to: i64,
    /// Where the window being fetched starts (ms).
    pub position: i64,
    /// The next page of that window (`null`: its first).
    pub page: Value,
    pub pages: u64,
    pub messages: u64,
    pub records: u64,
    pub percent: f64,
}

/// Consecutive give-ups (a source failing for now) after which a backfill fails.
const BACKFILL_GIVE_UPS: u32 = 20;

/// The receiver of every polled type: the schedule, the pages and the
/// backfills, over the type's [`Source`]. Backfills run between polls, a
/// page at a time, so ticks stay on time and the source sees one request
/// of this integration at once.
pub struct Polled<S> {
    source: S,
    schedule: Schedule,
    /// How far back the first poll of a new integration reaches.
    reach: Duration,
    /// When the integration's settings last changed (ms): a poll before it
    /// was made with other settings, so the first poll is due at once.
    changed_at: i64,
}

impl<S: Source> Polled<S> {
    pub fn new(source: S, integration: &switchyard_core::Integration, interval: Duration, reach: Duration) -> Self {
        Self { source, schedule: Schedule { interval }, reach, changed_at: integration.updated_at }
    }
}

/// Why a poll did not end with an outcome to report.
enum Ended {
    /// The receiver must stop: it returns, and its state is where it was.
    Stopping,
    /// Nothing was stored (the store is unavailable): the supervisor tries again.
    Store(String),
}

/// A page fetched and what it held handed over, stored.
struct Handed {
    /// The page without its messages.
    page: Page,
    messages: usize,
    records: usize,
}

#[async_trait]
impl<S: Source> Ingress for Polled<S> {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        let mut state: PollState =
            sink.progress(PROGRESS).await.and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default();
        let mut due = self.schedule.due(&state, now_ms(), rand::thread_rng().gen_range(0.0..1.0));
        // A poll stopped between its pages goes on at once; so does one made with other settings.
        if state.open.is_some() || state.polled_at.is_some_and(|at| at < self.changed_at) {
            due = now_ms();
        }
        let mut job = sink.backfill().await?;
        let mut give_ups = 0;
        loop {
            if now_ms() < due {
                if let Some(j) = job.as_mut() {
                    let step = self.backfill_step(sink, j, due, &mut give_ups).await;
                    match step {
                        Ok(true) => {}
                        Ok(false) => job = sink.backfill().await?,
                        Err(Ended::Stopping) => return Ok(()),
                        Err(Ended::Store(e)) => return Err(e),
                    }
                    continue;
                }
                let wait = Duration::from_millis((due - now_ms()).max(0) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = sink.backfill_asked() => {
                        job = sink.backfill().await?;
                        continue;
                    }
                    _ = sink.stopping() => return Ok(()),
                }
            }
            // The next tick's jitter, drawn before the poll so that its report says when that is.
            let draw = rand::thread_rng().gen_range(0.0..1.0);
            match self.poll(sink, &mut state, draw).await {
                Ok(()) => {}
                Err(Ended::Stopping) => return Ok(()),
                Err(Ended::Store(e)) => return Err(e),
            }
            due = self.schedule.due(&state, now_ms(), draw);
        }
    }
}

impl<S: Source> Polled<S> {
    /// One poll: the open one resumed at its page, or a new window; every
    /// page until the last, retried until the next tick; reported, with
    /// the next tick (its jitter drawn as `draw`).
    async fn poll(&self, sink: &dyn IngressSink, state: &mut PollState, draw: f64) -> Result<(), Ended> {
        let at = now_ms();
        let next_tick = at + self.schedule.interval.as_millis() as i64;
        let (window, mut page, mut pending) = match state.open.take() {
            Some(open) => (open.window, open.page, open.marks),
            None => {
                let since = state.until.unwrap_or(at - self.reach.as_millis() as i64);
                (Window { since, until: at.max(since) }, Value::Null, BTreeMap::new())
            }
        };
        state.polled_at = Some(at);
        let (mut messages, mut pages) = (0, 0);
        let report = |outcome, messages, next_at, error| {
            sink.link(LinkEvent::Polled(PollReport { at, outcome, messages, next_at, error }))
        };
        loop {
            let ask = Ask { window, page: &page, marks: &state.marks, backfill: false, sink };
            let mut after = state.clone();
            let fetched = match self.fetch_retrying(sink, ask, next_tick, Some(at)).await? {
                Ok(fetched) => fetched,
                Err(e) => {
                    // Left where it is: the next tick resumes this window at this page.
                    state.open = Some(OpenPoll { window, page, marks: pending });
                    let (outcome, why) = match e {
                        PollError::Retry { reason, .. } => {
                            (PollOutcome::Retrying, format!("{reason}; tried again at the next poll"))
                        }
                        PollError::Fail(reason) => (PollOutcome::Failed, reason),
                    };
                    report(outcome, messages, self.schedule.due(state, now_ms(), draw), Some(why));
                    return Ok(());
                }
            };
            let mut more = false;
            match &fetched {
                Fetched::NotModified => {
                    after.open = None;
                    after.until = Some(window.until);
                }
                Fetched::Page(p) => {
                    pending.extend(p.marks.clone());
                    pages += 1;
                    match &p.next {
                        Some(next) => {
                            after.open = Some(OpenPoll { window, page: next.clone(), marks: pending.clone() });
                            // A window of more pages than a poll fetches goes on at the next tick.
                            more = pages >= MAX_PAGES;
                        }
                        None => {
                            after.open = None;
                            after.until = Some(window.until);
                            after.marks.extend(std::mem::take(&mut pending));
                        }
                    }
                }
            }
            let progress = serde_json::to_string(&after).unwrap_or_default();
            let not_modified = matches!(fetched, Fetched::NotModified);
            messages += self.hand_over(sink, fetched, Some(progress)).await?.messages;
            *state = after;
            match &state.open {
                Some(open) if !more => page = open.page.clone(),
                _ => {
                    let outcome = if not_modified { PollOutcome::NotModified } else { PollOutcome::Polled };
                    let next = self.schedule.due(state, now_ms(), draw);
                    report(outcome, messages, next, None);
                    return Ok(());
                }
            }
        }
    }

    /// Hands a page's messages to the sink and waits until they are stored;
    /// `progress`, the poll's state after the page, is written with the
    /// last of them, or alone when there is none.
    async fn hand_over(
        &self,
        sink: &dyn IngressSink,
        fetched: Fetched,
        progress: Option<String>,
    ) -> Result<Handed, Ended> {
        let mut page = match fetched {
            Fetched::Page(p) => p,
            Fetched::NotModified => Page::default(),
        };
        let mut messages = std::mem::take(&mut page.messages);
        if messages.is_empty() {
            if let Some(progress) = progress {
                sink.save_progress(PROGRESS, &progress).await.map_err(Ended::Store)?;
            }
            return Ok(Handed { page, messages: 0, records: 0 });
        }
        if let (Some(last), Some(progress)) = (messages.last_mut(), progress) {
            last.progress.push((PROGRESS.to_owned(), progress));
        }
        let batched = store_batch(sink, messages, Duration::from_secs(3600), |_| async {}).await;
        if let Some(e) = batched.error {
            // What was not stored is fetched again: the state before this page is the one kept.
            return Err(if sink_stopping(sink).await { Ended::Stopping } else { Ended::Store(e) });
        }
        Ok(Handed { page, messages: batched.stored, records: batched.records })
    }

    /// One page of a backfill, its progress written after it; `Ok(false)`
    /// when the backfill ended (done, failed or cancelled).
    async fn backfill_step(
        &self,
        sink: &dyn IngressSink,
        job: &mut Backfill,
        due: i64,
        give_ups: &mut u32,
    ) -> Result<bool, Ended> {
        let until = match self.source.backfill_span() {
            Some(span) => (job.position + span.as_millis() as i64).min(job.to),
            None => job.to,
        };
        let window = Window { since: job.position, until };
        let none = BTreeMap::new();
        let ask = Ask { window, page: &job.page, marks: &none, backfill: true, sink };
        let end = match self.fetch_retrying(sink, ask, due, None).await? {
            Err(PollError::Retry { reason, .. }) => {
                *give_ups += 1;
                if *give_ups < BACKFILL_GIVE_UPS {
                    // Tried again after the poll that is due, not before it.
                    let wait = Duration::from_millis((due - now_ms()).max(0) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = sink.stopping() => return Err(Ended::Stopping),
                    }
                    return Ok(true);
                }
                Some(Err(format!("{reason}, {BACKFILL_GIVE_UPS} times in a row")))
            }
            Err(PollError::Fail(reason)) => Some(Err(reason)),
            Ok(fetched) => {
                *give_ups = 0;
                let handed = self.hand_over(sink, fetched, None).await?;
                job.pages += 1;
                job.messages += handed.messages as u64;
                job.records += handed.records as u64;
                match handed.page.next {
                    Some(next) => job.page = next,
                    None => {
                        job.position = window.until;
                        job.page = Value::Null;
                    }
                }
                let span = (job.to - job.from).max(1) as f64;
                job.percent = (100.0 * (job.position - job.from) as f64 / span).clamp(0.0, 100.0);
                (job.position >= job.to).then_some(Ok(()))
            }
        };
        let finished = end.is_some();
        let going = sink.backfill_progress(job, end).await.map_err(Ended::Store)?;
        Ok(going && !finished)
    }

    /// A page, retried with back-off while the source fails for now, until
    /// `deadline` (the next tick); `Ok(Err(_))` is the error given up on.
    /// `poll`: when the poll it is a page of started, to report retries in
    /// the status (a backfill's retries are its own).
    async fn fetch_retrying(
        &self,
        sink: &dyn IngressSink,
        ask: Ask<'_>,
        deadline: i64,
        poll: Option<i64>,
    ) -> Result<Result<Fetched, PollError>, Ended> {
        let mut backoff = crate::connection::Backoff::default();
        loop {
            let fetched = tokio::select! {
                fetched = self.source.fetch(ask) => fetched,
                _ = sink.stopping() => return Err(Ended::Stopping),
            };
            let error = match fetched {
                Err(e @ PollError::Retry { .. }) => e,
                other => return Ok(other),
            };
            let PollError::Retry { after, .. } = &error else { unreachable!() };
            let wait = after.unwrap_or_else(|| backoff.next_delay()).min(RETRY_MAX);
            let retry_at = now_ms() + wait.as_millis() as i64;
            if retry_at >= deadline {
                return Ok(Err(error));
            }
            if let Some(at) = poll {
                let why = format!("{}; retrying in {}", error.reason(), humantime::format_duration(round_s(wait)));
                sink.link(LinkEvent::Polled(PollReport {
                    at,
                    outcome: PollOutcome::Retrying,
                    messages: 0,
                    next_at: retry_at,
                    error: Some(why),
                }));
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = sink.stopping() => return Err(Ended::Stopping),
            }
        }
    }
}

fn round_s(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs_f64().round() as u64)
}

/// Whether the sink is stopping now (a refusal then is not a store failure).
async fn sink_stopping(sink: &dyn IngressSink) -> bool {
    use futures_util::FutureExt;
    sink.stopping().now_or_never().is_some()
}
