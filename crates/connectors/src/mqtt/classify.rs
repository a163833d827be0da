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
/// A refusal says the broker's reason in words, not a code's name.
pub fn v3(error: &rumqttc::ConnectionError) -> Outcome {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    let refused = |why: &str| format!("the broker refused the connection: {why}");
    match error {
        E::ConnectionRefused(C::BadUserNamePassword) => reject(refused("bad user name or password")),
        E::ConnectionRefused(C::NotAuthorized) => reject(refused("not authorized")),
        E::ConnectionRefused(C::BadClientId) => reject(refused("the client id was not accepted")),
        E::ConnectionRefused(C::RefusedProtocolVersion) => {
            reject(refused("it does not speak MQTT 3.1.1 (try protocolVersion 5)"))
        }
        E::ConnectionRefused(C::ServiceUnavailable) => retry(refused("the server is unavailable")),
        E::Tls(_) => reject(error.to_string()),
        _ => retry(error.to_string()),
    }
}

/// MQTT 5: the same, with version 5's reason codes.
pub fn v5(error: &rumqttc::v5::ConnectionError) -> Outcome {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C;
    use rumqttc::v5::ConnectionError as E;
    let refused = |why: &str| format!("the broker refused the connection: {why}");
    match error {
        E::ConnectionRefused(code) => {
            let (why, permanent) = match code {
                C::BadUserNamePassword => ("bad user name or password", true),
                C::NotAuthorized => ("not authorized", true),
                C::ClientIdentifierNotValid => ("the client id was not accepted", true),
                C::UnsupportedProtocolVersion => ("it does not speak MQTT 5 (try protocolVersion 3.1.1)", true),
                C::Banned => ("this client is banned", true),
                C::BadAuthenticationMethod => ("the authentication method is not supported", true),
                C::ServerUnavailable | C::ServerBusy => ("the server is unavailable or busy", false),
                C::QuotaExceeded => ("a quota was exceeded", false),
                C::ConnectionRateExceeded => ("too many connections in a short time", false),
                _ => ("see the broker's log", false),
            };
            if permanent {
                reject(refused(why))
            } else {
                retry(refused(why))
            }
        }
        E::Tls(_) => reject(error.to_string()),
        _ => retry(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why_in_words() {
        use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
        let Outcome::Reject { reason, .. } = v3(&E::ConnectionRefused(C::BadUserNamePassword)) else { panic!() };
        assert_eq!(reason, "the broker refused the connection: bad user name or password");
        assert!(matches!(v3(&E::ConnectionRefused(C::ServiceUnavailable)), Outcome::Retry { .. }));
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as C5;
        use rumqttc::v5::ConnectionError as E5;
        let Outcome::Reject { reason, .. } = v5(&E5::ConnectionRefused(C5::NotAuthorized)) else { panic!() };
        assert_eq!(reason, "the broker refused the connection: not authorized");
        assert!(!reason.contains("NotAuthorized"), "no enum names");
        assert!(matches!(v5(&E5::ConnectionRefused(C5::ServerBusy)), Outcome::Retry { .. }));
    }
}
