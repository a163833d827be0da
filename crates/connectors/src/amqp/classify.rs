//! What an AMQP failure means for the delivery.
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::ErrorKind;

use crate::egress::Outcome;

/// Connection and transient broker faults retry; a missing exchange, refused
/// access or a refused login do not (the broker's text is kept).
pub fn classify(error: &lapin::Error) -> Outcome {
    let reason = describe(error);
    let permanent = match error.kind() {
        ErrorKind::ProtocolError(e) => matches!(
            e.kind(),
            AMQPErrorKind::Soft(
                AMQPSoftError::NOTFOUND | AMQPSoftError::ACCESSREFUSED | AMQPSoftError::PRECONDITIONFAILED
            ) | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED | AMQPHardError::INVALIDPATH)
        ),
        ErrorKind::AuthProviderError(_) => true,
        // The broker's certificate refused (amqps): a configuration problem.
        _ => crate::shared::is_certificate_error(error),
    };
    if permanent {
        Outcome::Reject { reason, deactivate: false }
    } else {
        Outcome::Retry { after: None, reason }
    }
}

/// The broker's own words where it gave any.
pub fn describe(error: &lapin::Error) -> String {
    match error.kind() {
        ErrorKind::ProtocolError(e) => format!("{}: {}", e.kind(), e.get_message()),
        _ => error.to_string(),
    }
}
