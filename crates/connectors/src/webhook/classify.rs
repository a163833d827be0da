//! What an HTTP answer means for a delivery (Standard Webhooks semantics):
//! 2xx delivered; 410 stop sending; 408, 429, 5xx and 3xx retry (redirects
//! are never followed); other 4xx reject. Pure, so it is tested without a network.
use std::time::{Duration, SystemTime};

use crate::egress::Outcome;

/// `Retry-After` is honoured up to this; longer asks fall back to the schedule's cap.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        410 => {
            Outcome::Reject { reason: "410 Gone: the endpoint asked not to be sent to again".into(), deactivate: true }
        }
        408 | 425 | 429 | 500..=599 => Outcome::Retry { after: retry_after, reason: format!("HTTP {status}") },
        300..=399 => Outcome::Retry { after: None, reason: format!("HTTP {status}: redirects are not followed") },
        _ => Outcome::Reject { reason: format!("HTTP {status}"), deactivate: false },
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at [`RETRY_AFTER_MAX`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(delay.min(RETRY_AFTER_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify_status(204, None), Outcome::Delivered);
        assert!(matches!(classify_status(410, None), Outcome::Reject { deactivate: true, .. }));
        assert!(matches!(classify_status(400, None), Outcome::Reject { deactivate: false, .. }));
        assert!(matches!(classify_status(401, None), Outcome::Reject { .. }));
        for s in [408, 429, 500, 502, 503, 504, 301, 307] {
            assert!(matches!(classify_status(s, None), Outcome::Retry { .. }), "{s}");
        }
        let after = Some(Duration::from_secs(7));
        assert_eq!(classify_status(429, after), Outcome::Retry { after, reason: "HTTP 429".into() });
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("999999999", now), Some(RETRY_AFTER_MAX));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
