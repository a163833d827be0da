//! The retry schedule (Standard Webhooks): after the first attempt, retries
//! 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h later, each ±20 %.
//! Pure: tested without a clock.
use std::time::Duration;

/// Delay before attempt n+1 (index n, 0 = the first attempt, sent at once).
pub const SCHEDULE_SECS: [u64; 10] = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];

/// Attempts in one round (a resend starts a new round).
pub const MAX_ATTEMPTS: u32 = SCHEDULE_SECS.len() as u32;

/// `Retry-After` shorter than this is raised to it, so a far side cannot make us spin.
pub const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);

/// `Retry-After` longer than this is lowered to it (the schedule's longest
/// step), so a far side cannot park a delivery for years. The one cap for
/// every connector.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(SCHEDULE_SECS[SCHEDULE_SECS.len() - 1]);

/// The delay before the next attempt after `made` failed attempts in this
/// round, or `None` when the round is over (the delivery is dead).
/// `jitter` in [-1, 1] scales ±20 %; `retry_after`, bounded to
/// [`RETRY_AFTER_MIN`, `RETRY_AFTER_MAX`], replaces the scheduled delay.
pub fn next_delay(made: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
    let base = *SCHEDULE_SECS.get(made as usize)?;
    if let Some(after) = retry_after {
        return Some(after.clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX));
    }
    let factor = 1.0 + 0.2 * jitter.clamp(-1.0, 1.0);
    Some(Duration::from_secs_f64(base as f64 * factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_then_gives_up() {
        assert_eq!(next_delay(1, None, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(2, None, 0.0), Some(Duration::from_secs(300)));
        assert_eq!(next_delay(9, None, 0.0), Some(Duration::from_secs(86400)));
        assert_eq!(next_delay(10, None, 0.0), None, "ten attempts, then dead");
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(next_delay(2, None, 1.0), Some(Duration::from_secs(360)));
        assert_eq!(next_delay(2, None, -1.0), Some(Duration::from_secs(240)));
        assert_eq!(next_delay(2, None, 7.0), Some(Duration::from_secs(360)), "clamped");
    }

    #[test]
    fn retry_after_replaces_the_schedule_within_bounds() {
        assert_eq!(next_delay(1, Some(Duration::from_secs(42)), 0.5), Some(Duration::from_secs(42)));
        assert_eq!(next_delay(1, Some(Duration::ZERO), 0.0), Some(RETRY_AFTER_MIN));
        let years = Duration::from_secs(10 * 365 * 86400);
        assert_eq!(
            next_delay(1, Some(years), 0.0),
            Some(RETRY_AFTER_MAX),
            "a far side cannot park a delivery for years"
        );
        assert_eq!(RETRY_AFTER_MAX, Duration::from_secs(24 * 3600));
        assert_eq!(next_delay(10, Some(Duration::from_secs(1)), 0.0), None, "but never past the last attempt");
    }
}
