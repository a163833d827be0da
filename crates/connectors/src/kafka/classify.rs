//! What a Kafka producer error means for the delivery.
use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

use crate::egress::Outcome;

/// Authorization, unknown-topic-with-no-creation, size and record faults are
/// permanent; timeouts, unavailable brokers and leader elections retry.
pub fn classify(error: &KafkaError) -> Outcome {
    let reason = error.to_string();
    let permanent = match error.rdkafka_error_code() {
        Some(code) => matches!(
            code,
            C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed
                | C::SaslAuthenticationFailed
                | C::Authentication
                | C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidRecord
                | C::InvalidTopic
                | C::UnsupportedForMessageFormat
        ),
        None => false,
    };
    if permanent {
        Outcome::Reject { reason, deactivate: false }
    } else {
        Outcome::Retry { after: None, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_and_record_faults_are_permanent_the_rest_retries() {
        for code in [C::TopicAuthorizationFailed, C::SaslAuthenticationFailed, C::MessageSizeTooLarge, C::InvalidTopic]
        {
            assert!(matches!(classify(&KafkaError::MessageProduction(code)), Outcome::Reject { .. }), "{code:?}");
        }
        for code in [C::MessageTimedOut, C::LeaderNotAvailable, C::NotLeaderForPartition, C::BrokerTransportFailure] {
            assert!(matches!(classify(&KafkaError::MessageProduction(code)), Outcome::Retry { .. }), "{code:?}");
        }
    }
}
