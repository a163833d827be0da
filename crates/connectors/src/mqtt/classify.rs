//! What an MQTT failure means for the delivery.
use crate::egress::Outcome;

fn reject(reason: String) -> Outcome {
    Outcome::Reject { reason, deactivate: false }
}

fn retry(reason: String) -> Outcome {
    Outcome::Retry { after: None, reason }
}

/// MQTT 3.1.1: refused credentials or authorization and TLS faults are
/// permanent; the rest (the broker unreachable, the connection lost) retries.
pub fn v3(error: &rumqttc::ConnectionError) -> Outcome {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    let reason = error.to_string();
    match error {
        E::ConnectionRefused(
            C::BadUserNamePassword | C::NotAuthorized | C::BadClientId | C::RefusedProtocolVersion,
        ) => reject(format!("the broker refused the connection: {reason}")),
        E::Tls(_) => reject(reason),
        _ => retry(reason),
    }
}

/// MQTT 5: the same, with version 5's reason codes.
pub fn v5(error: &rumqttc::v5::ConnectionError) -> Outcome {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    use rumqttc::v5::ConnectionError as E;
    let reason = error.to_string();
    match error {
        E::ConnectionRefused(
            C::BadUserNamePassword
            | C::NotAuthorized
            | C::ClientIdentifierNotValid
            | C::UnsupportedProtocolVersion
            | C::Banned
            | C::BadAuthenticationMethod,
        ) => reject(format!("the broker refused the connection: {reason}")),
        E::Tls(_) => reject(reason),
        _ => retry(reason),
    }
}
