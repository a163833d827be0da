//! What a NATS failure means for the delivery.
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::ConnectErrorKind;

use crate::egress::Outcome;

/// Refused credentials and TLS failures are permanent; an unreachable server
/// or a lost connection retries.
pub fn connect(error: &async_nats::ConnectError) -> Outcome {
    let reason = error.to_string();
    match error.kind() {
        ConnectErrorKind::Authentication
        | ConnectErrorKind::AuthorizationViolation
        | ConnectErrorKind::ServerParse
        | ConnectErrorKind::Tls => Outcome::Reject { reason, deactivate: false },
        _ => Outcome::Retry { after: None, reason },
    }
}

/// No stream captures the subject: permanent (the far side must add one,
/// then resend). Timeouts and broken connections retry.
pub fn publish(error: &async_nats::jetstream::context::PublishError, subject: &str) -> Outcome {
    match error.kind() {
        PublishErrorKind::StreamNotFound => {
            Outcome::Reject { reason: format!("no JetStream stream captures subject `{subject}`"), deactivate: false }
        }
        PublishErrorKind::MaxPayloadExceeded => Outcome::Reject { reason: error.to_string(), deactivate: false },
        _ => Outcome::Retry { after: None, reason: error.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_are_permanent_an_unreachable_server_retries() {
        for kind in [ConnectErrorKind::Authentication, ConnectErrorKind::AuthorizationViolation, ConnectErrorKind::Tls]
        {
            assert!(matches!(connect(&kind.into()), Outcome::Reject { .. }), "{kind:?}");
        }
        for kind in [ConnectErrorKind::Io, ConnectErrorKind::TimedOut] {
            assert!(matches!(connect(&kind.into()), Outcome::Retry { .. }), "{kind:?}");
        }
        let missing = publish(&PublishErrorKind::StreamNotFound.into(), "a.b");
        assert!(matches!(missing, Outcome::Reject { ref reason, .. } if reason.contains("`a.b`")));
        assert!(matches!(publish(&PublishErrorKind::TimedOut.into(), "a.b"), Outcome::Retry { .. }));
    }
}
