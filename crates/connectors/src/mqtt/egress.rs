//! Publishing one record: render the topic, make sure the link is up, queue
//! the message and wait for the broker's acknowledgement.
use std::time::Duration;

use crate::connection::Held;
use async_trait::async_trait;
use switchyard_core::{Integration, IntegrationId, Metadata};

use super::config::MqttConfig;
use super::link::Link;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, SendResult};
use crate::policy::EgressPolicy;
use crate::shared::{delivered, failed, published, reject, resolve_allowed, retry, Template};

const TIMEOUT: Duration = Duration::from_secs(15);

pub struct MqttEgress {
    config: MqttConfig,
    integration: IntegrationId,
    client_id: String,
    topic: Template,
    policy: EgressPolicy,
    target: String,
    link: Held<std::sync::Arc<Link>>,
}

impl MqttEgress {
    pub fn new(
        config: MqttConfig,
        integration: &Integration,
        globals: &Metadata,
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        let topic = Template::compile("topicTemplate", &config.topic_template, globals)?;
        let client_id = config.client_id.clone().unwrap_or_else(|| format!("switchyard-{}", integration.id));
        Ok(Self {
            target: config.target(),
            config,
            integration: integration.id.clone(),
            client_id,
            topic,
            policy: ctx.policy.clone(),
            link: Held::default(),
        })
    }

    /// The live link, opening one first if there is none.
    async fn link(&self, target: &str) -> Result<std::sync::Arc<Link>, SendResult> {
        self.link
            .get(
                |l| l.is_alive(),
                || async {
                    resolve_allowed(&self.policy, &self.config.host, self.config.port)
                        .await
                        .map_err(|e| reject(target, e))?;
                    Ok(std::sync::Arc::new(Link::open(&self.config, &self.client_id).map_err(|e| reject(target, e))?))
                },
            )
            .await
    }
}

#[async_trait]
impl Egress for MqttEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let topic = match self.topic.render(message.record, &[]) {
            Ok(t) if valid_topic(&t) => t,
            Ok(t) => return reject(&self.target, format!("`{t}` is not a topic one can publish to")),
            Err(e) => return reject(&self.target, e),
        };
        let target = format!("{} {topic}", self.target);
        let link = match self.link(&target).await {
            Ok(l) => l,
            Err(result) => return result,
        };
        let body = published(message.record, &self.integration, message.delivery_id).to_string();
        let ack = match link.publish(topic, self.config.retain, body, message.delivery_id).await {
            Ok(ack) => ack,
            Err(outcome) => return failed(&target, outcome),
        };
        match tokio::time::timeout(TIMEOUT, ack).await {
            Ok(Ok(Ok(()))) => delivered(&target, Some(message.delivery_id.to_owned())),
            Ok(Ok(Err(outcome))) => failed(&target, outcome),
            Ok(Err(_)) => retry(&target, "the connection was closed before the broker acknowledged"),
            Err(_) => retry(&target, "the broker did not acknowledge within 15 s"),
        }
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.config.rate)
    }
}

/// Not empty, no wildcards, no NUL, at most 65535 bytes.
fn valid_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= 65535 && !t.contains(['+', '#', '\0'])
}
