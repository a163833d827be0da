//! Polled sources: types that fetch what a source holds on a schedule
//! instead of holding a link it pushes on (HTTP polling, weather, utility
//! interval data). One [`Polled`] receiver per integration runs the
//! schedule and the pages; a type supplies only its [`Source`], which
//! fetches one page of a window of time.
//!
//! - **Schedule.** A poll is due an interval after the last one started,
//!   plus a small jitter (so hundreds of integrations do not fire
//!   together); ticks missed while the node was down or a poll ran long are
//!   coalesced into one poll now. One task per integration: never two polls
//!   of it at once.
//! - **Windows.** Each poll asks for `since` (where the last complete poll
//!   ended) to `until` (when this one started): no gap, whatever the delays.
//! - **Progress.** After each page the poll's state (its window, the next
//!   page, the source's validators and cursor) is written with the page's
//!   last message, in the same transaction as its records; a page with no
//!   message writes it alone. A restart resumes at the page it stopped
//!   before; what a page held that was already stored is deduplicated.
//! - **Failures**, classified like a delivery: a 429, a 5xx or the network
//!   is retried with back-off (and `Retry-After`) until the next tick, then
//!   left to it; a 401 or 404 fails the status with the source's words and
//!   the next tick tries again. The status shows each poll's time, outcome
//!   and the next one's time ([`PollReport`]).
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P};
use switchyard_core::{now_ms, InboundMessage, Metadata};

use crate::egress::{BuildError, Outcome};
use crate::ingress::{store_batch, Ingress, IngressSink, LinkEvent, PollOutcome, PollReport};

/// The polled types: their records are keyed (see `Decoder::keyed`).
pub const TYPES: [&str; 3] = ["HTTP_POLL", "WEATHER", "UTILITY_DATA"];

pub fn is_polled(type_key: &str) -> bool {
    TYPES.contains(&type_key)
}

/// The type of the devices a polled type's records get when their Place has none mapped.
pub fn device_type(type_key: &str) -> &'static str {
    match type_key {
        "WEATHER" => "weather",
        "UTILITY_DATA" => "meter",
        _ => "device",
    }
}

/// The progress name a poll's state is kept under.
pub const PROGRESS: &str = "poll";

/// Pages one poll fetches at most; a window of more goes on at the next tick.
pub const MAX_PAGES: usize = 1000;

/// The most a retry waits, even when the source asks for longer.
const RETRY_MAX: Duration = Duration::from_secs(15 * 60);

/// A span of time a poll asks its source for (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub since: i64,
    pub until: i64,
}

/// A poll stopped between its pages: its window and the page to fetch next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenPoll {
    pub window: Window,
    pub page: Value,
    /// Marks the pages so far gave, kept once the window's last page is in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub marks: BTreeMap<String, String>,
}

/// What a polled integration keeps of its source between pages and polls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollState {
    /// When the last poll started (ms): the next is due an interval later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polled_at: Option<i64>,
    /// Where the last poll that reached its last page ended: the next window starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenPoll>,
    /// What the source asked to be sent back, by name (an ETag, a cursor).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub marks: BTreeMap<String, String>,
}

/// One page a source answered.
#[derive(Debug, Default)]
pub struct Page {
    pub messages: Vec<InboundMessage>,
    /// Where the next page is; `None` when this is the last of the window.
    pub next: Option<Value>,
    /// Marks to keep once the window's last page is in (set or replace;
    /// a later page's replace an earlier one's).
    pub marks: BTreeMap<String, String>,
}

#[derive(Debug)]
pub enum Fetched {
    Page(Page),
    /// Nothing changed since the marks (304 Not Modified): nothing to store.
    NotModified,
}

/// Why a page could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollError {
    /// For now (429, 5xx, the network): tried again after `after` when the source said.
    Retry { after: Option<Duration>, reason: String },
    /// Until the settings or the source change (401, 404, an answer that is not the source's shape).
    Fail(String),
}

impl PollError {
    /// A delivery's classification of the same answer (see `webhook::classify_status`).
    pub fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Retry { after, reason } => Self::Retry { after, reason },
            Outcome::Reject { reason, .. } => Self::Fail(reason),
            Outcome::Delivered => Self::Fail("the answer could not be read".into()),
        }
    }

    /// An HTTP answer that is not a success, with the source's own words
    /// from its body, classified like a delivery.
    pub fn from_status(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let mut error = Self::from_outcome(crate::webhook::classify::classify_status(status, retry_after));
        let said = body.trim();
        if !said.is_empty() {
            let said: String = said.chars().take(300).collect();
            match &mut error {
                Self::Retry { reason, .. } | Self::Fail(reason) => *reason = format!("{reason}: {said}"),
            }
        }
        error
    }

    /// No answer at all: the network or a timeout is worth retrying; a refused address is not.
    pub fn from_http(error: &crate::http::HttpError) -> Self {
        if error.is_permanent() {
            Self::Fail(error.to_string())
        } else {
            Self::Retry { after: None, reason: error.to_string() }
        }
    }

    fn reason(&self) -> &str {
        match self {
            Self::Retry { reason, .. } | Self::Fail(reason) => reason,
        }
    }
}

/// What a page is asked for.
#[derive(Clone, Copy)]
pub struct Ask<'a> {
    pub window: Window,
    /// `Value::Null` for the window's first page, else what the page before named.
    pub page: &'a Value,
    /// What the source asked to be sent back (empty for a backfill).
    pub marks: &'a BTreeMap<String, String>,
    /// A past range asked by a backfill, not a poll of what is new.
    pub backfill: bool,
    /// The integration's sink, for what a source keeps beside the poll's
    /// state (a refreshed OAuth token).
    pub sink: &'a dyn IngressSink,
}

/// What a polled type fetches from.
#[async_trait]
pub trait Source: Send + Sync {
    /// One page of what the source holds over the window asked.
    async fn fetch(&self, ask: Ask<'_>) -> Result<Fetched, PollError>;
    /// The longest window one backfill request may cover (the source's
    /// limit on a range); `None`: a backfill's whole range is one window.
    fn backfill_span(&self) -> Option<Duration> {
        None
    }
}

/// `intervalSeconds`, with the type's default and least value.
pub fn interval_property(default: f64, least: f64) -> P {
    P::new("intervalSeconds", "Interval (s)", K::Number)
        .range(least, 7.0 * 86_400.0)
        .default(json!(default))
        .describe("How often the source is polled. A poll missed while Switchyard was down is made once, at start.")
}

/// When polls are due.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
}

impl Schedule {
    /// The most a tick is moved later, so integrations started together spread out.
    pub fn jitter(&self) -> Duration {
        (self.interval / 20).min(Duration::from_secs(2))
    }

    /// When the next poll is due (ms): an interval after the last one
    /// started, or now when that is past (missed ticks make one poll);
    /// `draw` in [0, 1) picks the jitter.
    pub fn due(&self, state: &PollState, now: i64, draw: f64) -> i64 {
        let jitter = (self.jitter().as_millis() as f64 * draw.clamp(0.0, 1.0)) as i64;
        match state.polled_at {
            Some(last) if last + (self.interval.as_millis() as i64) > now => {
                last + self.interval.as_millis() as i64 + jitter
            }
            _ => now + jitter,
        }
    }
}

/// A backfill as it runs: an action's range, and how far it got (its
/// progress, kept in the action: a restart resumes there).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    #[serde(default)]
    pub page: Value,
    pub pages: u64,
    pub messages: u64,
    pub records: u64,
    pub percent: f64,
}

impl Backfill {
    /// A new one over [from, to).
    pub fn new(id: String, from: i64, to: i64) -> Self {
        Self { id, from, to, position: from, ..Default::default() }
    }
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
                    // Tried again after the poll that is due.
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

/// A template rendered for each page of a poll: the organization's
/// globals, the window (`since`, `until` in RFC 3339; `since_ms`,
/// `until_ms`, `since_s`, `until_s` as numbers) and the source's `cursor`.
pub struct WindowTemplate {
    env: minijinja::Environment<'static>,
    property: &'static str,
    globals: Value,
}

impl WindowTemplate {
    /// Strict: an unknown name fails the poll with the property's name.
    pub fn compile(property: &'static str, source: &str, globals: &Metadata) -> Result<Self, BuildError> {
        let mut env = switchyard_core::template::environment(minijinja::UndefinedBehavior::Strict);
        env.add_template_owned(property, source.to_owned())
            .map_err(|e| BuildError::Config(format!("{property}: {e}")))?;
        Ok(Self { env, property, globals: json!(globals) })
    }

    pub fn render(&self, window: Window, cursor: Option<&str>) -> Result<String, String> {
        let template = self.env.get_template(self.property).map_err(|e| e.to_string())?;
        let ctx = json!({
            "globals": self.globals,
            "since": crate::shared::rfc3339(window.since),
            "until": crate::shared::rfc3339(window.until),
            "since_ms": window.since,
            "until_ms": window.until,
            "since_s": window.since.div_euclid(1000),
            "until_s": window.until.div_euclid(1000),
            "cursor": cursor.unwrap_or(""),
        });
        switchyard_core::template::render(&template, ctx)
            .map_err(|e| format!("{} could not be rendered: {e}", self.property))
    }
}

#[cfg(test)]
mod tests;
