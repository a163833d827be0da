//! Per-integration flow control, as pure state machines (tested without a
//! clock): a token bucket that delays sends (never drops them) and a circuit
//! breaker that stops hammering a target that keeps failing.
use std::time::{Duration, Instant};

use serde::Serialize;

/// A token bucket: `rate` sends per second, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, now: Instant) -> Self {
        let burst = rate.clamp(1.0, 100.0);
        Self { rate, burst, tokens: burst, last: now }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes a token; returns how long to wait before sending (zero if none).
    pub fn take(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Takes a token if there is one now; else how long until there is
    /// (nothing is taken: the caller comes back later).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Sending normally.
    Closed,
    /// Too many failures in a row: nothing is sent until the cooldown ends.
    Open,
    /// Cooldown over: one probe decides whether to close or open again.
    HalfOpen,
}

/// What the breaker allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Send,
    /// The one probe of a half-open circuit; send it alone.
    Probe,
    /// Open: try again after this long.
    Wait(Duration),
}

/// When a circuit opens and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub open_after: u32,
    /// The first cooldown; it doubles after each failed probe, up to `max_cooldown`.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { open_after: 5, cooldown: Duration::from_secs(5), max_cooldown: Duration::from_secs(300) }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: CircuitState,
    failures: u32,
    since: Instant,
    cooldown: Duration,
    probing: bool,
}

impl Breaker {
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Self { config, state: CircuitState::Closed, failures: 0, since: now, cooldown: config.cooldown, probing: false }
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Open and still cooling down: nothing may be sent now.
    pub fn cooling_down(&self, now: Instant) -> bool {
        self.state == CircuitState::Open && matches!(self.clone().permit(now), Permit::Wait(_))
    }

    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            CircuitState::Closed => Permit::Send,
            CircuitState::Open => {
                let waited = now.saturating_duration_since(self.since);
                if waited < self.cooldown {
                    return Permit::Wait(self.cooldown - waited);
                }
                self.state = CircuitState::HalfOpen;
                self.since = now;
                self.probing = true;
                Permit::Probe
            }
            CircuitState::HalfOpen if self.probing => Permit::Wait(Duration::from_millis(200)),
            CircuitState::HalfOpen => {
                self.probing = true;
                Permit::Probe
            }
        }
    }

    /// The probe this breaker permitted was not sent after all (the
    /// deliveries were no longer the sender's): the next send may probe.
    pub fn probe_not_sent(&mut self) {
        self.probing = false;
    }

    /// Records an attempt's result. Rejections (the far side said no to
    /// this one message) do not count against the target.
    pub fn record(&mut self, target_failed: bool, now: Instant) {
        self.probing = false;
        if !target_failed {
            if self.state != CircuitState::Closed {
                self.since = now;
            }
            self.state = CircuitState::Closed;
            self.failures = 0;
            self.cooldown = self.config.cooldown;
            return;
        }
        self.failures += 1;
        match self.state {
            CircuitState::HalfOpen => {
                self.state = CircuitState::Open;
                self.since = now;
                self.cooldown = (self.cooldown * 2).min(self.config.max_cooldown);
            }
            CircuitState::Closed if self.failures >= self.config.open_after => {
                self.state = CircuitState::Open;
                self.since = now;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_delays_rather_than_drops() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, t0);
        assert_eq!(b.take(t0), Duration::ZERO);
        assert_eq!(b.take(t0), Duration::ZERO, "burst of two");
        assert_eq!(b.take(t0), Duration::from_millis(500));
        assert_eq!(b.take(t0), Duration::from_millis(1000), "each extra send waits its turn");
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.take(later), Duration::ZERO, "refilled, up to the burst");
    }

    #[test]
    fn trying_takes_only_a_token_that_is_there() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, t0);
        assert_eq!(b.try_take(t0), Ok(()));
        assert_eq!(b.try_take(t0), Ok(()));
        assert_eq!(b.try_take(t0), Err(Duration::from_millis(500)), "empty: come back in half a second");
        assert_eq!(b.try_take(t0), Err(Duration::from_millis(500)), "a refusal takes nothing");
        assert_eq!(b.try_take(t0 + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let t0 = Instant::now();
        let config = BreakerConfig::default();
        let (open_after, first) = (config.open_after, config.cooldown);
        let mut b = Breaker::new(config, t0);
        for _ in 0..open_after - 1 {
            b.record(true, t0);
        }
        assert_eq!(b.state(), CircuitState::Closed);
        b.record(true, t0);
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.permit(t0 + Duration::from_secs(1)), Permit::Wait(Duration::from_secs(4)));
        let t1 = t0 + first;
        assert_eq!(b.permit(t1), Permit::Probe);
        assert!(matches!(b.permit(t1), Permit::Wait(_)), "one probe at a time");
        b.record(true, t1);
        assert_eq!(b.state(), CircuitState::Open);
        assert_eq!(b.permit(t1 + first), Permit::Wait(first), "the cooldown doubles");
        let t2 = t1 + first * 2;
        assert_eq!(b.permit(t2), Permit::Probe);
        b.record(false, t2);
        assert_eq!((b.state(), b.consecutive_failures()), (CircuitState::Closed, 0));
        assert_eq!(b.permit(t2), Permit::Send);
    }
}
