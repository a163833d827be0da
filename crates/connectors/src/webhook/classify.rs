//! What an HTTP answer means for a delivery (Standard Webhooks semantics):
//! 2xx delivered; 410 stop sending; 408, 429, 5xx and 3xx retry (redirects
//! are never followed); other 4xx reject. Pure, so it is tested without a network.
use std::time::Duration;

use crate::egress::Outcome;

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
}
