//! Publishing over one client per integration, connected on first use.
use std::time::Duration;

use async_nats::jetstream;
use async_trait::async_trait;
use switchyard_core::{Integration, IntegrationId, Metadata};

use super::classify;
use super::config::{Auth, NatsConfig};
use crate::connection::Held;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, SendResult};
use crate::policy::EgressPolicy;
use crate::shared::{delivered, failed, published, reject, resolve_allowed, retry, Template};

const TIMEOUT: Duration = Duration::from_secs(15);

pub struct NatsEgress {
    config: NatsConfig,
    integration: IntegrationId,
    subject: Template,
    policy: EgressPolicy,
    client: Held<async_nats::Client>,
}

impl NatsEgress {
    pub fn new(
        config: NatsConfig,
        integration: &Integration,
        globals: &Metadata,
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        let subject = Template::compile("subjectTemplate", &config.subject_template, globals)?;
        Ok(Self {
            config,
            integration: integration.id.clone(),
            subject,
            policy: ctx.policy.clone(),
            client: Held::default(),
        })
    }

    fn servers(&self) -> String {
        self.config.servers.join(",")
    }

    /// The client (it reconnects by itself once connected), connecting first if there is none.
    async fn client(&self, target: &str) -> Result<async_nats::Client, SendResult> {
        self.client.get(|_| true, || self.connect(target)).await
    }

    async fn connect(&self, target: &str) -> Result<async_nats::Client, SendResult> {
        let mut addrs = Vec::new();
        for server in &self.config.servers {
            let url = url::Url::parse(server).map_err(|e| reject(target, format!("{server}: {e}")))?;
            let host = url.host_str().unwrap_or_default();
            resolve_allowed(&self.policy, host, url.port().unwrap_or(4222)).await.map_err(|e| reject(target, e))?;
            addrs.push(url);
        }
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("switchyard {}", self.integration))
            .connection_timeout(TIMEOUT)
            .ignore_discovered_servers();
        options = match &self.config.auth {
            Auth::None => options,
            Auth::Token(t) => options.token(t.expose().to_owned()),
            Auth::Password(u, p) => options.user_and_password(u.clone(), p.expose().to_owned()),
            Auth::Credentials(c) => {
                options.credentials(c.expose()).map_err(|e| reject(target, format!("credentials: {e}")))?
            }
        };
        options.connect(addrs.as_slice()).await.map_err(|e| failed(target, classify::connect(&e)))
    }
}

#[async_trait]
impl Egress for NatsEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let servers = self.servers();
        let subject = match self.subject.render(message.record, &[]) {
            Ok(s) if valid_subject(&s) => s,
            Ok(s) => return reject(&servers, format!("`{s}` is not a subject one can publish to")),
            Err(e) => return reject(&servers, e),
        };
        let target = format!("{servers} {subject}");
        let client = match self.client(&target).await {
            Ok(c) => c,
            Err(result) => return result,
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Switchyard-Delivery-Id", message.delivery_id);
        headers.insert("Content-Type", "application/json");
        let body = published(message.record, &self.integration, message.delivery_id).to_string();
        if self.config.jet_stream {
            // The stream drops a second message with the same id (within its duplicate window).
            headers.insert("Nats-Msg-Id", message.delivery_id);
            let js = jetstream::new(client);
            let ack = async { js.publish_with_headers(subject.clone(), headers, body.into()).await?.await };
            match tokio::time::timeout(TIMEOUT, ack).await {
                Ok(Ok(ack)) => delivered(&target, Some(format!("{}:{}", ack.stream, ack.sequence))),
                Ok(Err(e)) => failed(&target, classify::publish(&e, &subject)),
                Err(_) => retry(&target, "no JetStream acknowledgement within 15 s"),
            }
        } else {
            let publish = async {
                client.publish_with_headers(subject.clone(), headers, body.into()).await.map_err(|e| e.to_string())?;
                // A round trip to the server: the message has reached it.
                client.flush().await.map_err(|e| e.to_string())
            };
            match tokio::time::timeout(TIMEOUT, publish).await {
                Ok(Ok(())) => delivered(&target, Some(message.delivery_id.to_owned())),
                Ok(Err(e)) => retry(&target, e),
                Err(_) => retry(&target, "the server did not answer within 15 s"),
            }
        }
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.config.rate)
    }
}

/// Tokens separated by dots, none empty, no spaces or wildcards.
fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|t| !t.is_empty() && !t.contains(['*', '>']) && !t.chars().any(char::is_whitespace))
}
