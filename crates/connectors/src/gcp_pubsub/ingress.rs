//! Subscribing: a subscription per topic (created when missing; one that
//! exists is used as it is), pulled in turn. Each message goes to the sink
//! as it comes; those stored are acknowledged together, and while messages
//! wait for the rate limit their ack deadline is extended. A message not
//! taken (the receiver stopping, the store failing) is nacked (deadline 0)
//! so Pub/Sub sends it again at once; one acknowledged late, or not at all,
//! comes again with the same messageId, which deduplicates it.
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use futures_util::FutureExt;
use serde_json::{json, Value};
use switchyard_core::{now_ms, InboundMessage, Integration};

use super::config::{topic_name, AccountKey, DEFAULT_ENDPOINT};
use super::token::Tokens;
use crate::egress::{BuildError, EgressContext, Outcome};
use crate::http::{HttpClient, ANSWER_MAX};
use crate::ingress::{store_batch, Ingress, IngressSink, LinkEvent};
use crate::shared::Settings;

/// Messages asked for per pull.
const PULL: usize = 100;
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PubSubIngress {
    tokens: Tokens,
    endpoint: String,
    /// Per topic: (`projects/p/topics/t`, `projects/p/subscriptions/s`).
    subscriptions: Vec<(String, String)>,
    ack_deadline: u64,
    http: HttpClient,
}

impl PubSubIngress {
    pub fn new(integration: &Integration, ctx: &EgressContext) -> Result<Self, BuildError> {
        let s = Settings::of(integration)?;
        let bad = BuildError::Config;
        let json = s.need_secret("accountKeyJson")?;
        let key = AccountKey::parse(json.expose()).map_err(|e| bad(format!("accountKeyJson {e}")))?;
        let project = s.text("projectId")?.map(str::to_owned).or_else(|| key.project_id.clone());
        let project_name = project
            .clone()
            .ok_or_else(|| bad("projectId: needs a project: set it, or use a key that names one".into()))?;
        let named = s.text("subscription")?;
        let topics = s.strings("topics")?;
        let mut subscriptions = Vec::with_capacity(topics.len());
        for (i, topic) in topics.iter().enumerate() {
            let full = topic_name(topic, project.as_deref()).map_err(|e| bad(format!("topics[{i}] {e}")))?;
            let short = full.rsplit('/').next().unwrap_or_default();
            let subscription = match named {
                Some(name) if topics.len() == 1 => name.to_owned(),
                _ => format!("switchyard-{}-{short}", integration.id),
            };
            subscriptions.push((full, format!("projects/{project_name}/subscriptions/{subscription}")));
        }
        if subscriptions.is_empty() {
            return Err(bad("topics: subscribe to at least one topic".into()));
        }
        Ok(Self {
            tokens: Tokens::new(key).map_err(BuildError::Config)?,
            endpoint: s.text("endpointUrl")?.unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/').to_owned(),
            subscriptions,
            ack_deadline: s.number("ackDeadlineSeconds")?.map_or(60, |n| n as u64),
            http: ctx.http.clone(),
        })
    }

    /// One Pub/Sub call; its answer, or the error in Pub/Sub's words.
    async fn call(&self, method: http::Method, path: &str, body: Value) -> Result<(u16, Value), String> {
        let token = self.tokens.get(&self.http).await.map_err(|o| match o {
            Outcome::Retry { reason, .. } | Outcome::Reject { reason, .. } => reason,
            Outcome::Delivered => String::new(),
        })?;
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}/v1/{path}", self.endpoint))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(bytes::Bytes::from(body.to_string()))
            .map_err(|e| e.to_string())?;
        let answer =
            self.http.send(request, CALL_TIMEOUT).await.map_err(|e| format!("Pub/Sub could not be reached: {e}"))?;
        let status = answer.status();
        let text = answer.text(ANSWER_MAX * 16).await;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 401 {
            self.tokens.clear().await;
        }
        Ok((status, value))
    }

    /// A call that must succeed.
    async fn ok(&self, method: http::Method, path: &str, body: Value) -> Result<Value, String> {
        let (status, value) = self.call(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(pubsub_error(status, &value, path))
    }

    /// Each topic's subscription, created when missing.
    async fn subscribe(&self) -> Result<(), String> {
        for (topic, subscription) in &self.subscriptions {
            let body = json!({"topic": topic, "ackDeadlineSeconds": self.ack_deadline});
            let (status, value) = self.call(http::Method::PUT, subscription, body).await?;
            let exists = status == 409 || value["error"]["status"] == "ALREADY_EXISTS";
            if !(200..300).contains(&status) && !exists {
                return Err(pubsub_error(status, &value, subscription));
            }
        }
        Ok(())
    }

    async fn set_deadline(&self, subscription: &str, ack_ids: &[String], seconds: u64) {
        if ack_ids.is_empty() {
            return;
        }
        let body = json!({"ackIds": ack_ids, "ackDeadlineSeconds": seconds});
        if let Err(e) = self.ok(http::Method::POST, &format!("{subscription}:modifyAckDeadline"), body).await {
            tracing::warn!(subscription, error = %e, "changing the ack deadline failed; the deadline runs out instead");
        }
    }

    fn message(topic: &str, received: &Value) -> InboundMessage {
        let m = &received["message"];
        let payload = m["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .unwrap_or_default();
        let mut attributes: Vec<(String, String)> = m["attributes"]
            .as_object()
            .map(|a| a.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        for field in ["publishTime", "orderingKey"] {
            if let Some(v) = m[field].as_str().filter(|v| !v.is_empty()) {
                attributes.push((field.to_owned(), v.to_owned()));
            }
        }
        InboundMessage {
            source_ref: topic.rsplit('/').next().unwrap_or(topic).to_owned(),
            dedup_key: m["messageId"].as_str().map(str::to_owned),
            attributes,
            payload,
            received_at: now_ms(),
            progress: vec![],
        }
    }

    /// Hands one pull's messages to the sink, acknowledges those stored and
    /// nacks the rest. `Ok(true)`: the receiver is stopping.
    async fn take(
        &self,
        sink: &dyn IngressSink,
        topic: &str,
        subscription: &str,
        received: &[Value],
    ) -> Result<bool, String> {
        let ack_ids: Vec<String> =
            received.iter().map(|r| r["ackId"].as_str().unwrap_or_default().to_owned()).collect();
        let every = Duration::from_secs((self.ack_deadline / 2).max(1));
        let batch = received.iter().map(|r| Self::message(topic, r)).collect();
        let batched =
            store_batch(sink, batch, every, |n| self.set_deadline(subscription, &ack_ids[n..], self.ack_deadline))
                .await;
        let (stored, failed) = (batched.stored, batched.error);
        if stored > 0 {
            let body = json!({"ackIds": &ack_ids[..stored]});
            self.ok(http::Method::POST, &format!("{subscription}:acknowledge"), body).await?;
        }
        match failed {
            None => Ok(false),
            Some(e) => {
                self.set_deadline(subscription, &ack_ids[stored..], 0).await;
                if sink.stopping().now_or_never().is_some() {
                    Ok(true)
                } else {
                    Err(e)
                }
            }
        }
    }
}

fn pubsub_error(status: u16, value: &Value, what: &str) -> String {
    match (value["error"]["status"].as_str(), value["error"]["message"].as_str()) {
        (Some(code), Some(message)) => format!("Pub/Sub answered {status} for {what}: {code}: {message}"),
        _ => format!("Pub/Sub answered {status} for {what}"),
    }
}

#[async_trait]
impl Ingress for PubSubIngress {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        tokio::select! {
            subscribed = self.subscribe() => subscribed?,
            _ = sink.stopping() => return Ok(()),
        }
        sink.link(LinkEvent::Connected);
        loop {
            for (topic, subscription) in &self.subscriptions {
                let (body, path) = (json!({"maxMessages": PULL}), format!("{subscription}:pull"));
                let pulled = tokio::select! {
                    p = self.ok(http::Method::POST, &path, body) => p?,
                    // A pull cut short leaves what it took outstanding until its deadline; then it comes again.
                    _ = sink.stopping() => return Ok(()),
                };
                let received = pulled["receivedMessages"].as_array().map(Vec::as_slice).unwrap_or_default();
                if !received.is_empty() && self.take(sink, topic, subscription, received).await? {
                    return Ok(());
                }
            }
        }
    }
}
