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
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P};
use switchyard_core::InboundMessage;

use crate::egress::Outcome;
use crate::ingress::IngressSink;

mod receiver;
mod template;

pub use receiver::{Backfill, Polled};
pub use template::WindowTemplate;

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

    pub(crate) fn reason(&self) -> &str {
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

#[cfg(test)]
mod tests;
