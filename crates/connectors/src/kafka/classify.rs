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
