//! One `topics.publish` per record.
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{json, Value};
use switchyard_core::delivery::{excerpt, RESPONSE_EXCERPT_MAX};
use switchyard_core::{Integration, IntegrationId};

use super::config::PubSubConfig;
use super::token::Tokens;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, Outcome, Response, SendResult};
use crate::http::{HttpClient, ANSWER_MAX};
use crate::shared::{failed, published, reject, retry};

pub struct PubSubEgress {
    tokens: Tokens,
    topic: String,
    url: String,
    rate: f64,
    integration: IntegrationId,
    http: HttpClient,
}

impl PubSubEgress {
    pub fn new(config: PubSubConfig, integration: &Integration, ctx: &EgressContext) -> Result<Self, BuildError> {
        Ok(Self {
            url: format!("{}/v1/{}:publish", config.endpoint, config.topic),
            tokens: Tokens::new(config.key).map_err(BuildError::Config)?,
            topic: config.topic,
            rate: config.rate,
            integration: integration.id.clone(),
            http: ctx.http.clone(),
        })
    }
}

/// Pub/Sub's error statuses: throttling and unavailability retry; the rest
/// (PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT…) do not.
fn classify(status: u16, answer: &Value) -> Outcome {
    let code = answer["error"]["status"].as_str().unwrap_or_default();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    let reason = if code.is_empty() { format!("HTTP {status}") } else { format!("{code}: {message}") };
    match (status, code) {
        (429, _) | (_, "RESOURCE_EXHAUSTED") => Outcome::Retry { after: Some(Duration::from_secs(1)), reason },
        (500.., _) | (_, "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "INTERNAL" | "ABORTED") => {
            Outcome::Retry { after: None, reason }
        }
        _ => Outcome::Reject { reason, deactivate: false },
    }
}

#[async_trait]
impl Egress for PubSubEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        if let Some(blocked) = self.http.refuses(&self.url) {
            return failed(&self.topic, Outcome::Reject { reason: blocked.to_string(), deactivate: false });
        }
        let token = match self.tokens.get(&self.http).await {
            Ok(t) => t,
            Err(outcome) => return failed(&self.topic, outcome),
        };
        let data = published(message.record, &self.integration, message.delivery_id).to_string();
        let body = json!({"messages": [{
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "attributes": {"switchyard-delivery-id": message.delivery_id},
        }]});
        let bearer = format!("Bearer {token}");
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
        let sent = self.http.post(&self.url, &headers, body.to_string(), Duration::from_secs(15)).await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("Pub/Sub could not be reached: {e}");
                return if e.is_permanent() { reject(&self.topic, reason) } else { retry(&self.topic, reason) };
            }
        };
        let status = response.status();
        let text = response.text(ANSWER_MAX).await;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut result =
            Response { status: Some(status), remote_id: None, excerpt: Some(excerpt(&text, RESPONSE_EXCERPT_MAX)) };
        let outcome = match answer["messageIds"][0].as_str() {
            Some(id) if (200..300).contains(&status) => {
                result.remote_id = Some(id.to_owned());
                Outcome::Delivered
            }
            _ if status == 401 => {
                // An expired or revoked token: fetch a new one next time.
                self.tokens.clear().await;
                Outcome::Retry { after: None, reason: "the access token was refused (401)".into() }
            }
            _ => classify(status, &answer),
        };
        SendResult { sent: None, outcome, response: result, target: self.topic.clone() }
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.rate)
    }
}
