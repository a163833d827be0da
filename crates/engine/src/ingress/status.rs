//! The truthful status of one ingress connection: its state, since when,
//! the last message and error, what became of its messages, and the last 50
//! state changes. The supervisor and the sink write it; the API reads it.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use switchyard_connectors::{PollOutcome, PollReport};
use switchyard_core::{now_ms, MessageOutcome};
use utoipa::ToSchema;

/// State changes kept per integration.
pub const HISTORY: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// Opening the link.
    Connecting,
    /// Up and subscribed.
    Connected,
    /// Up, but no message came for `expectedIntervalSeconds`, or the
    /// protocol's keep-alive failed.
    Silent,
    /// The link failed; the next try waits its back-off.
    Reconnecting,
    /// The settings cannot work (they must be changed).
    Failed,
    /// The integration is disabled, or runs nowhere.
    Disabled,
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateChange {
    pub state: ConnectionState,
    /// When (ms since the epoch).
    pub at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of the messages received since the connection started on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub received: u64,
    /// Messages whose records are stored.
    pub stored: u64,
    pub duplicates: u64,
    pub unmapped: u64,
    pub decode_errors: u64,
    /// Records stored from them.
    pub records: u64,
}

/// An ingress integration's connection, as `GET /v2/integrations/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub state: ConnectionState,
    /// When it entered that state (ms since the epoch).
    pub since: i64,
    pub last_message_at: Option<i64>,
    pub last_error: Option<String>,
    /// Messages wait at the source: the integration is at its rate limit.
    pub throttled: bool,
    pub counters: Counters,
    /// With several nodes on one database: the node that holds the
    /// connection (its counters are that node's since it took it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A polled integration's last poll and its next (none before its first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollView>,
}

/// How a polled integration's last poll went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PollResult {
    /// Every page was fetched; what they held is stored (or logged with its reason).
    Polled,
    /// The source had nothing new (304 Not Modified).
    NotModified,
    /// The source failed for now (429, 5xx, the network): tried again at `nextPollAt`.
    Retrying,
    /// The source refused the poll (401, 404): `lastError` has its words.
    Failed,
}

/// A polled integration's polls, as its status shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollView {
    /// When the last poll started (ms since the epoch).
    pub last_poll_at: i64,
    pub last_outcome: PollResult,
    /// Messages the last poll handed over.
    pub last_messages: u64,
    /// When the next try is due: a retry of the last poll, or the next tick (ms).
    pub next_poll_at: i64,
}

#[derive(Debug)]
struct Inner {
    state: ConnectionState,
    since: i64,
    last_message_at: Option<i64>,
    last_error: Option<String>,
    history: VecDeque<StateChange>,
    poll: Option<PollView>,
}

#[derive(Debug)]
pub struct Connection {
    inner: Mutex<Inner>,
    received: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    unmapped: AtomicU64,
    decode_errors: AtomicU64,
    records: AtomicU64,
    /// Until when (ms) the last message waited for the rate limit.
    throttled_until: AtomicU64,
}

impl Connection {
    pub fn new(state: ConnectionState) -> Self {
        let now = now_ms();
        let mut history = VecDeque::with_capacity(HISTORY);
        history.push_back(StateChange { state, at: now, error: None });
        Self {
            inner: Mutex::new(Inner {
                state,
                since: now,
                last_message_at: None,
                last_error: None,
                history,
                poll: None,
            }),
            received: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            unmapped: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            records: AtomicU64::new(0),
            throttled_until: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters `state` (a change only if it differs, or the error does);
    /// `error` becomes the last error when given.
    pub fn set(&self, state: ConnectionState, error: Option<String>) {
        let mut inner = self.lock();
        if inner.state == state && (error.is_none() || error == inner.last_error) {
            return;
        }
        let now = now_ms();
        if inner.state != state {
            inner.since = now;
        }
        inner.state = state;
        if error.is_some() {
            inner.last_error.clone_from(&error);
        }
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(StateChange { state, at: now, error });
    }

    pub fn state(&self) -> ConnectionState {
        self.lock().state
    }

    /// A message came: a silent connection is connected again.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let silent = {
            let mut inner = self.lock();
            inner.last_message_at = Some(now_ms());
            inner.state == ConnectionState::Silent
        };
        if silent {
            self.set(ConnectionState::Connected, None);
        }
    }

    pub fn outcome(&self, outcome: MessageOutcome, records: usize) {
        let counter = match outcome {
            MessageOutcome::Stored => &self.stored,
            MessageOutcome::Duplicate => &self.duplicates,
            MessageOutcome::Unmapped => &self.unmapped,
            MessageOutcome::DecodeError => &self.decode_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
    }

    /// A polled source's poll ended or waits to retry: its state follows
    /// (a silent one stays silent until a poll brings a message).
    pub fn polled(&self, report: PollReport) {
        let (result, state) = match report.outcome {
            PollOutcome::Polled => (PollResult::Polled, ConnectionState::Connected),
            PollOutcome::NotModified => (PollResult::NotModified, ConnectionState::Connected),
            PollOutcome::Retrying => (PollResult::Retrying, ConnectionState::Reconnecting),
            PollOutcome::Failed => (PollResult::Failed, ConnectionState::Failed),
        };
        let quiet = {
            let mut inner = self.lock();
            inner.poll = Some(PollView {
                last_poll_at: report.at,
                last_outcome: result,
                last_messages: report.messages as u64,
                next_poll_at: report.next_at,
            });
            if inner.state == state {
                // Retries of one poll are one change, with the latest words.
                if report.error.is_some() {
                    inner.last_error = report.error;
                }
                return;
            }
            inner.state == ConnectionState::Silent && report.messages == 0
        };
        if !(quiet && state == ConnectionState::Connected) {
            self.set(state, report.error);
        }
    }

    /// A message waits for the rate limit until `until` (ms).
    pub fn throttled(&self, until: i64) {
        self.throttled_until.fetch_max(until.max(0) as u64, Ordering::Relaxed);
    }

    /// Connected, but nothing came for `interval` seconds (since the last
    /// message, or since it connected): silent.
    pub fn check_silence(&self, interval: Option<f64>, now: i64) {
        let Some(interval) = interval else { return };
        let quiet = {
            let inner = self.lock();
            let last = inner.last_message_at.unwrap_or(inner.since).max(inner.since);
            inner.state == ConnectionState::Connected && now - last > (interval * 1000.0) as i64
        };
        if quiet {
            self.set(ConnectionState::Silent, Some(format!("no message for {interval} s")));
        }
    }

    pub fn view(&self) -> ConnectionView {
        let inner = self.lock();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnectionView {
            state: inner.state,
            since: inner.since,
            last_message_at: inner.last_message_at,
            last_error: inner.last_error.clone(),
            throttled: load(&self.throttled_until) as i64 > now_ms(),
            counters: Counters {
                received: load(&self.received),
                stored: load(&self.stored),
                duplicates: load(&self.duplicates),
                unmapped: load(&self.unmapped),
                decode_errors: load(&self.decode_errors),
                records: load(&self.records),
            },
            node: None,
            poll: inner.poll.clone(),
        }
    }

    /// The state changes kept, newest first.
    pub fn history(&self) -> Vec<StateChange> {
        self.lock().history.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_kept_newest_first_and_bounded() {
        let c = Connection::new(ConnectionState::Connecting);
        c.set(ConnectionState::Connected, None);
        c.set(ConnectionState::Connected, None);
        c.set(ConnectionState::Reconnecting, Some("gone".into()));
        let h = c.history();
        assert_eq!(
            h.iter().map(|s| s.state).collect::<Vec<_>>(),
            [ConnectionState::Reconnecting, ConnectionState::Connected, ConnectionState::Connecting],
            "a repeated state is no change"
        );
        assert_eq!(c.view().last_error.as_deref(), Some("gone"));
        for i in 0..100 {
            c.set(if i % 2 == 0 { ConnectionState::Connected } else { ConnectionState::Reconnecting }, None);
        }
        assert_eq!(c.history().len(), HISTORY);
    }

    #[test]
    fn a_quiet_connection_turns_silent_and_a_message_brings_it_back() {
        let c = Connection::new(ConnectionState::Connected);
        let since = c.view().since;
        c.check_silence(Some(5.0), since + 4_000);
        assert_eq!(c.state(), ConnectionState::Connected);
        c.check_silence(None, since + 60_000);
        assert_eq!(c.state(), ConnectionState::Connected, "no interval set: never silent for quiet");
        c.check_silence(Some(5.0), since + 6_000);
        assert_eq!(c.state(), ConnectionState::Silent);
        c.received();
        assert_eq!(c.state(), ConnectionState::Connected);
        assert!(c.view().last_message_at.is_some());
    }
}
