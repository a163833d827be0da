//! One AMQP 1.0 connection, session and sender link per integration, opened
//! on the first send and again after a failure; each message waits for the
//! hub's disposition.
use async_trait::async_trait;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, Message, MessageAnnotations, MessageId, Outcome as Disposition, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, Symbol};
use fe2o3_amqp::Sender;
use switchyard_core::{Integration, IntegrationId, Metadata};

use super::config::{EventHubsConfig, Namespace};
use super::link::{self, classify, TIMEOUT};
use crate::connection::Held;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, Outcome, SendResult};
use crate::policy::EgressPolicy;
use crate::shared::{delivered, failed, published, reject, retry, Template};

struct Link {
    _opened: link::Opened,
    sender: Sender,
}

pub struct EventHubsEgress {
    ns: Namespace,
    rate: f64,
    integration: IntegrationId,
    partition_key: Option<Template>,
    policy: EgressPolicy,
    target: String,
    link: Held<Link>,
}

/// The hub refused the message: permanent unless it says it is busy or
/// over a limit.
fn rejected(error: Option<fe2o3_amqp::types::definitions::Error>) -> Outcome {
    use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition};
    let Some(e) = error else { return Outcome::Reject { reason: "rejected".into(), deactivate: false } };
    let reason = format!("rejected: {:?} {}", e.condition, e.description.unwrap_or_default());
    match e.condition {
        ErrorCondition::AmqpError(
            AmqpError::ResourceLimitExceeded | AmqpError::InternalError | AmqpError::ResourceLocked,
        ) => Outcome::Retry { after: None, reason },
        ErrorCondition::Custom(ref c) if c.0.contains("server-busy") => Outcome::Retry { after: None, reason },
        _ => Outcome::Reject { reason, deactivate: false },
    }
}

impl EventHubsEgress {
    pub fn new(
        config: EventHubsConfig,
        integration: &Integration,
        globals: &Metadata,
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        let partition_key = config
            .partition_key
            .as_deref()
            .map(|t| Template::compile("partitionKeyTemplate", t, globals))
            .transpose()?;
        let scheme = if config.namespace.emulator { "amqp" } else { "amqps" };
        Ok(Self {
            target: format!("{scheme}://{}:{}/{}", config.namespace.host, config.namespace.port, config.namespace.hub),
            ns: config.namespace,
            rate: config.rate,
            integration: integration.id.clone(),
            partition_key,
            policy: ctx.policy.clone(),
            link: Held::default(),
        })
    }

    async fn open(&self) -> Result<Link, Outcome> {
        let mut opened = link::open(&self.ns, &self.policy, format!("switchyard-{}", self.integration)).await?;
        let attach =
            Sender::attach(&mut opened.session, format!("switchyard-{}", self.integration), self.ns.hub.as_str());
        let sender = tokio::time::timeout(TIMEOUT, attach)
            .await
            .map_err(|_| Outcome::Retry { after: None, reason: format!("attaching to {} timed out", self.ns.hub) })?
            .map_err(|e| classify(format!("attaching to {} failed: {e}", self.ns.hub)))?;
        Ok(Link { _opened: opened, sender })
    }
}

#[async_trait]
impl Egress for EventHubsEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let partition_key = match &self.partition_key {
            Some(t) => match t.render(message.record, &[]) {
                Ok(k) => Some(k),
                Err(e) => return reject(&self.target, e),
            },
            None => None,
        };
        let body = published(message.record, &self.integration, message.delivery_id).to_string();
        let mut annotations = MessageAnnotations::builder();
        if let Some(key) = partition_key {
            annotations = annotations.insert(Symbol::from("x-opt-partition-key"), key);
        }
        let amqp = Message::builder()
            .properties(Properties {
                message_id: Some(MessageId::String(message.delivery_id.to_owned())),
                content_type: Some(Symbol::from("application/json")),
                ..Default::default()
            })
            .application_properties(
                ApplicationProperties::builder().insert("switchyard-delivery-id", message.delivery_id).build(),
            )
            .message_annotations(annotations.build())
            .data(Data(Binary::from(body.into_bytes())))
            .build();
        let mut slot = self.link.lock().await;
        let opened =
            slot.open(|_| true, || async { self.open().await.map_err(|outcome| failed(&self.target, outcome)) }).await;
        let link = match opened {
            Ok(link) => link,
            Err(result) => return result,
        };
        let sent = tokio::time::timeout(TIMEOUT, link.sender.send(amqp)).await;
        match sent {
            Ok(Ok(Disposition::Accepted(_))) => delivered(&self.target, Some(message.delivery_id.to_owned())),
            Ok(Ok(Disposition::Rejected(r))) => failed(&self.target, rejected(r.error)),
            Ok(Ok(other)) => retry(&self.target, format!("not accepted: {other:?}")),
            Ok(Err(e)) => {
                let result = failed(&self.target, classify(format!("sending failed: {e}")));
                slot.failed(&result.to_string());
                result
            }
            Err(_) => {
                slot.failed("no disposition within 15 s");
                retry(&self.target, "no disposition within 15 s")
            }
        }
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::definitions::{AmqpError, Error};

    #[test]
    fn refusals_are_permanent_unless_the_hub_is_busy() {
        let refused = Error::new(AmqpError::UnauthorizedAccess, Some("no".into()), None);
        assert!(matches!(rejected(Some(refused)), Outcome::Reject { .. }));
        let busy = Error::new(AmqpError::ResourceLimitExceeded, None, None);
        assert!(matches!(rejected(Some(busy)), Outcome::Retry { .. }));
    }
}
