//! Publishing to the exchange over one connection and one confirming
//! channel per integration, opened on first use and again after a failure.
use crate::connection::Held;
use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use switchyard_core::{Integration, IntegrationId, Metadata};

use super::classify::{classify, describe};
use super::config::AmqpConfig;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, Outcome, SendResult};
use crate::policy::EgressPolicy;
use crate::shared::{delivered, failed, published, reject, resolve_allowed, retry, Template};

pub struct AmqpEgress {
    config: AmqpConfig,
    integration: IntegrationId,
    routing_key: Template,
    policy: EgressPolicy,
    /// Where messages go, as the delivery log shows it: `url/exchange`.
    target: String,
    link: Held<(Connection, Channel)>,
}

impl AmqpEgress {
    pub fn new(
        config: AmqpConfig,
        integration: &Integration,
        globals: &Metadata,
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        let routing_key = Template::compile("routingKeyTemplate", &config.routing_key_template, globals)?;
        let target = format!("{}/{}", config.url.trim_end_matches('/'), config.exchange);
        Ok(Self {
            config,
            integration: integration.id.clone(),
            routing_key,
            policy: ctx.policy.clone(),
            target,
            link: Held::default(),
        })
    }

    /// The open channel, connecting first if there is none.
    async fn channel(&self) -> Result<Channel, SendResult> {
        let open = |(conn, channel): &(Connection, Channel)| conn.status().connected() && channel.status().connected();
        self.link.lock().await.open(open, || self.connect()).await.map(|(_, channel)| channel.clone())
    }

    async fn connect(&self) -> Result<(Connection, Channel), SendResult> {
        let url = self.config.connect_url().map_err(|e| reject(&self.target, e))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port().unwrap_or(if url.scheme() == "amqps" { 5671 } else { 5672 });
        resolve_allowed(&self.policy, &host, port).await.map_err(|e| reject(&self.target, e))?;
        let open = async {
            let conn = Connection::connect(url.as_str(), ConnectionProperties::default()).await?;
            let channel = conn.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            Ok::<_, lapin::Error>((conn, channel))
        };
        match tokio::time::timeout(std::time::Duration::from_secs(15), open).await {
            Ok(Ok(link)) => Ok(link),
            Ok(Err(e)) => Err(failed(&self.target, classify(&e))),
            Err(_) => Err(retry(&self.target, "connecting to the broker timed out")),
        }
    }

    /// Forgets the channel after `reason` so the next send opens a fresh one.
    async fn reset(&self, reason: &str) {
        if let Some((conn, _)) = self.link.failed(reason).await {
            let _ = conn.close(200, ShortString::from("reset")).await;
        }
    }
}

#[async_trait]
impl Egress for AmqpEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let routing_key = match self.routing_key.render(message.record, &[]) {
            Ok(key) if key.len() <= 255 => key,
            Ok(_) => return reject(&self.target, "the routing key is longer than 255 bytes"),
            Err(e) => return reject(&self.target, e),
        };
        let body = published(message.record, &self.integration, message.delivery_id).to_string();
        let channel = match self.channel().await {
            Ok(c) => c,
            Err(result) => return result,
        };
        let mut headers = FieldTable::default();
        headers.insert("switchyard-delivery-id".into(), AMQPValue::LongString(message.delivery_id.into()));
        let properties = BasicProperties::default()
            .with_message_id(message.delivery_id.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(if self.config.persistent { 2 } else { 1 })
            .with_headers(headers);
        let options = BasicPublishOptions { mandatory: true, immediate: false };
        let publish = async {
            channel
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    routing_key.as_str().into(),
                    options,
                    body.as_bytes(),
                    properties,
                )
                .await?
                .await
        };
        let confirmation = match tokio::time::timeout(std::time::Duration::from_secs(15), publish).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                // A channel error (a missing exchange, say) closes the channel: start afresh next time.
                tracing::debug!(integration = %self.integration, error = %describe(&e), "publish failed");
                let result = failed(&self.target, classify(&e));
                self.reset(&result.to_string()).await;
                return result;
            }
            Err(_) => {
                self.reset("the broker did not confirm within 15 s").await;
                return retry(&self.target, "the broker did not confirm within 15 s");
            }
        };
        let target = format!("{} ({routing_key})", self.target);
        match confirmation {
            Confirmation::Ack(None) => delivered(&target, Some(message.delivery_id.to_owned())),
            // Mandatory and unroutable: no queue is bound for this key (yet); the broker kept nothing.
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => failed(
                &target,
                Outcome::Retry {
                    after: None,
                    reason: format!(
                        "the broker returned the message: {} {} (no queue is bound for routing key `{routing_key}`)",
                        returned.reply_code, returned.reply_text
                    ),
                },
            ),
            Confirmation::Nack(None) => retry(&target, "the broker refused the message (nack)"),
            Confirmation::NotRequested => retry(&target, "publisher confirms are off on this channel"),
        }
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.config.rate)
    }
}
