//! One idempotent producer per integration, created on the first send.
use std::time::Duration;

use crate::connection::Held;
use async_trait::async_trait;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use switchyard_core::{Integration, IntegrationId, Metadata};

use super::classify::classify;
use super::config::KafkaConfig;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, SendResult};
use crate::policy::EgressPolicy;
use crate::shared::{delivered, failed, published, reject, resolve_allowed, Template};

pub struct KafkaEgress {
    config: KafkaConfig,
    integration: IntegrationId,
    key: Option<Template>,
    policy: EgressPolicy,
    target: String,
    producer: Held<FutureProducer>,
}

impl KafkaEgress {
    pub fn new(
        config: KafkaConfig,
        integration: &Integration,
        globals: &Metadata,
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        let key = config.key_template.as_deref().map(|t| Template::compile("keyTemplate", t, globals)).transpose()?;
        Ok(Self {
            target: format!("{} {}", config.servers.join(","), config.topic),
            config,
            integration: integration.id.clone(),
            key,
            policy: ctx.policy.clone(),
            producer: Held::default(),
        })
    }

    /// The producer (librdkafka keeps its own broker connections), made on first use.
    async fn producer(&self) -> Result<FutureProducer, SendResult> {
        self.producer.get(|_| true, || self.make_producer()).await
    }

    async fn make_producer(&self) -> Result<FutureProducer, SendResult> {
        for server in &self.config.servers {
            let (host, port) = server.rsplit_once(':').unwrap_or((server, "9092"));
            let port = port.parse().unwrap_or(9092);
            resolve_allowed(&self.policy, host, port).await.map_err(|e| reject(&self.target, e))?;
        }
        self.config
            .client_config(&format!("switchyard-{}", self.integration))
            .create()
            .map_err(|e| reject(&self.target, format!("the producer could not be made: {e}")))
    }
}

impl KafkaEgress {
    /// A message that timed out: say whether any broker could be reached at
    /// all (librdkafka only says the message timed out).
    async fn timed_out(&self, producer: &FutureProducer) -> crate::egress::Outcome {
        use rdkafka::producer::Producer;
        let client = producer.clone();
        let reachable =
            tokio::task::spawn_blocking(move || client.client().fetch_metadata(None, Duration::from_secs(2)).is_ok())
                .await
                .unwrap_or(false);
        let servers = self.config.servers.join(", ");
        let reason = if reachable {
            format!("the brokers ({servers}) did not take the message within {} ms", self.config.timeout_ms)
        } else {
            format!("no broker could be reached at {servers}: check bootstrapServers, the network and the brokers")
        };
        crate::egress::Outcome::Retry { after: None, reason }
    }
}

#[async_trait]
impl Egress for KafkaEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let key = match &self.key {
            Some(t) => match t.render(message.record, &[]) {
                Ok(k) => Some(k),
                Err(e) => return reject(&self.target, e),
            },
            None => None,
        };
        let producer = match self.producer().await {
            Ok(p) => p,
            Err(result) => return result,
        };
        let body = published(message.record, &self.integration, message.delivery_id).to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "switchyard-delivery-id", value: Some(message.delivery_id) })
            .insert(Header { key: "content-type", value: Some("application/json") });
        let mut record = FutureRecord::to(&self.config.topic).payload(&body).headers(headers);
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        match producer.send(record, Duration::from_millis(self.config.timeout_ms)).await {
            Ok(d) => delivered(&self.target, Some(format!("{}:{}:{}", self.config.topic, d.partition, d.offset))),
            Err((e, _)) if e.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::MessageTimedOut) => {
                failed(&self.target, self.timed_out(&producer).await)
            }
            Err((e, _)) => failed(&self.target, classify(&e)),
        }
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.config.rate)
    }
}
