//! Connections held for an integration, the one way: opened on first use,
//! reused while healthy, dropped after a failure on them and opened again
//! when next needed, with their state kept for the integration's status.
//! Connection-based senders (MQTT, AMQP, NATS, Event Hubs, Kafka) hold
//! theirs in a [`Held`]; an ingress supervisor paces its reconnects with
//! [`Backoff`].
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rand::Rng;
use switchyard_core::now_ms;

/// What became of a held connection last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Never opened yet.
    Idle,
    Connected,
    /// The last open or use failed; the next use opens it again.
    Down,
}

/// A held connection's state, as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStatus {
    pub state: LinkState,
    /// When it entered that state (ms since the epoch; 0 while idle).
    pub since: i64,
    pub last_error: Option<String>,
    /// Failures in a row since it was last connected.
    pub failures: u32,
}

impl Default for LinkStatus {
    fn default() -> Self {
        Self { state: LinkState::Idle, since: 0, last_error: None, failures: 0 }
    }
}

/// One connection of type `C` and its state.
pub struct Held<C> {
    slot: tokio::sync::Mutex<Option<C>>,
    status: std::sync::Mutex<LinkStatus>,
}

impl<C> Default for Held<C> {
    fn default() -> Self {
        Self { slot: tokio::sync::Mutex::new(None), status: std::sync::Mutex::default() }
    }
}

/// Exclusive use of a held connection (for senders that need `&mut`).
pub struct Guard<'a, C> {
    slot: tokio::sync::MutexGuard<'a, Option<C>>,
    status: &'a std::sync::Mutex<LinkStatus>,
}

impl<C> Held<C> {
    pub async fn lock(&self) -> Guard<'_, C> {
        Guard { slot: self.slot.lock().await, status: &self.status }
    }

    pub fn status(&self) -> LinkStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets the connection after a failure on it (`reason`), so the next use opens a fresh one.
    pub async fn failed(&self, reason: &str) -> Option<C> {
        self.lock().await.failed(reason)
    }
}

impl<C: Clone> Held<C> {
    /// The connection: the held one while `healthy` says so, else a new one from `open`.
    pub async fn get<E, F, Fut>(&self, healthy: impl Fn(&C) -> bool, open: F) -> Result<C, E>
    where
        E: Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        self.lock().await.open(healthy, open).await.cloned()
    }
}

impl<C> Guard<'_, C> {
    /// The held connection while `healthy` says so, else one opened now.
    pub async fn open<E, F, Fut>(&mut self, healthy: impl Fn(&C) -> bool, open: F) -> Result<&mut C, E>
    where
        E: Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        if self.slot.as_ref().is_some_and(|c| !healthy(c)) {
            self.failed("the connection was closed");
        }
        if self.slot.is_none() {
            match open().await {
                Ok(c) => {
                    *self.slot = Some(c);
                    self.set(|s| *s = LinkStatus { state: LinkState::Connected, since: now_ms(), ..s.clone() });
                }
                Err(e) => {
                    self.failed(&e.to_string());
                    return Err(e);
                }
            }
        }
        Ok(self.slot.as_mut().expect("opened above"))
    }

    /// Forgets the connection after a failure (`reason`); returns it, for a graceful close.
    pub fn failed(&mut self, reason: &str) -> Option<C> {
        self.set(|s| {
            if s.state != LinkState::Down {
                s.since = now_ms();
            }
            s.state = LinkState::Down;
            s.last_error = Some(reason.to_owned());
            s.failures += 1;
        });
        self.slot.take()
    }

    fn set(&self, change: impl FnOnce(&mut LinkStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let connected = status.state == LinkState::Connected;
        change(&mut status);
        if status.state == LinkState::Connected && !connected {
            status.failures = 0;
        }
    }
}

/// Delays between reconnects: 1 s doubling to 60 s, each ±20 %, back to 1 s
/// once a connection holds. Pure but for the jitter's draw.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(60);

    /// The delay before the next try after one more failure; `jitter` in [-1, 1].
    pub fn next_with(&mut self, jitter: f64) -> Duration {
        let base = Self::FIRST.saturating_mul(1u32 << self.failures.min(6)).min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        base.mul_f64(1.0 + 0.2 * jitter.clamp(-1.0, 1.0))
    }

    pub fn next_delay(&mut self) -> Duration {
        self.next_with(rand::thread_rng().gen_range(-1.0..=1.0))
    }

    /// A connection held: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_on_first_use_reuses_and_reopens_after_a_failure() {
        let held: Held<u32> = Held::default();
        assert_eq!(held.status().state, LinkState::Idle);
        let opened = std::sync::atomic::AtomicU32::new(0);
        let open = || async { Ok::<_, String>(opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1) };
        assert_eq!(held.get(|_| true, open).await, Ok(1));
        assert_eq!(held.get(|_| true, open).await, Ok(1), "reused while healthy");
        assert_eq!(held.status().state, LinkState::Connected);
        assert_eq!(held.failed("broker went away").await, Some(1));
        let down = held.status();
        assert_eq!(
            (down.state, down.last_error.as_deref(), down.failures),
            (LinkState::Down, Some("broker went away"), 1)
        );
        assert_eq!(held.get(|_| true, open).await, Ok(2), "opened again after a failure");
        assert_eq!(held.get(|c| *c != 2, open).await, Ok(3), "and when no longer healthy");
        assert_eq!(held.status().failures, 0, "connected again");
    }

    #[tokio::test]
    async fn a_failed_open_is_reported_and_tried_again_next_time() {
        let held: Held<u32> = Held::default();
        let refused = held.get(|_| true, || async { Err::<u32, _>("connection refused".to_owned()) }).await;
        assert_eq!(refused, Err("connection refused".to_owned()));
        let again = held.get(|_| true, || async { Err::<u32, _>("connection refused".to_owned()) }).await;
        assert!(again.is_err());
        let s = held.status();
        assert_eq!((s.state, s.failures, s.last_error.as_deref()), (LinkState::Down, 2, Some("connection refused")));
        assert_eq!(held.get(|_| true, || async { Ok::<_, String>(7) }).await, Ok(7));
    }

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let plain: Vec<u64> = (0..9).map(|_| b.next_with(0.0).as_secs()).collect();
        assert_eq!(plain, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.next_with(1.0), Duration::from_millis(1200));
        assert_eq!(b.next_with(-1.0), Duration::from_millis(1600));
    }
}
