//! Receiving: long polls (20 s) for up to 10 messages at a time. Each goes
//! to the sink as it comes; the batch's stored messages are deleted
//! (DeleteMessageBatch, entries with distinct ids, failed entries tried once
//! more) only once the sink says they are stored. While messages wait for
//! the rate limit their visibility is extended, so SQS does not hand them to
//! another receiver meanwhile; those not taken when the receiver stops are
//! made visible again at once. A message deleted late or not at all comes
//! again with the same MessageId, which deduplicates it.
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use serde_json::{json, Value};
use switchyard_core::{now_ms, InboundMessage, Integration};

use crate::aws::{Aws, AwsError};
use crate::egress::{BuildError, EgressContext};
use crate::ingress::{store_batch, Ingress, IngressSink, LinkEvent};
use crate::shared::Settings;

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// The longest wait SQS allows a receive.
const LONG_POLL_S: u64 = 20;
/// Messages per receive, SQS's most.
const BATCH: usize = 10;
/// Ten messages of SQS's largest size (1 MiB), and their attributes.
const ANSWER_LIMIT: usize = 16 << 20;

pub struct SqsIngress {
    aws: Aws,
    queue_url: String,
    /// The queue's name, each message's source ref.
    queue: String,
    http: crate::http::HttpClient,
}

impl SqsIngress {
    pub fn new(integration: &Integration, ctx: &EgressContext) -> Result<Self, BuildError> {
        let queue_url = Settings::of(integration)?.required("queueUrl")?.to_owned();
        let parsed = url::Url::parse(&queue_url)
            .map_err(|e| BuildError::Config(format!("queueUrl: `{queue_url}` is not a URL: {e}")))?;
        let queue = parsed.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default().to_owned();
        if queue.is_empty() {
            return Err(BuildError::Config(format!("queueUrl: `{queue_url}` names no queue")));
        }
        Ok(Self { aws: Aws::from_integration(integration, "sqs")?, queue_url, queue, http: ctx.http.clone() })
    }

    /// One SQS action (JSON protocol); its answer, or the error in SQS's words.
    async fn call(&self, action: &str, body: Value, timeout: Duration) -> Result<Value, String> {
        let target = format!("AmazonSQS.{action}");
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", target.as_str())];
        let (status, text) = self
            .aws
            .exchange(&self.http, "sqs", &headers, body.to_string(), timeout, ANSWER_LIMIT)
            .await
            .map_err(|e| e.reason)?;
        if (200..300).contains(&status) {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        Err(match AwsError::parse(&text) {
            Some(e) => format!("SQS {action} answered {status}: {}: {}", e.code, e.message),
            None => format!("SQS {action} answered {status}"),
        })
    }

    /// Sets the visibility of the messages with these receipt handles (best
    /// effort: a message it misses is visible again when its timeout ends).
    async fn set_visibility(&self, receipts: &[&str], seconds: u64) {
        if receipts.is_empty() {
            return;
        }
        let entries: Vec<Value> = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"Id": i.to_string(), "ReceiptHandle": r, "VisibilityTimeout": seconds}))
            .collect();
        let body = json!({"QueueUrl": self.queue_url, "Entries": entries});
        if let Err(e) = self.call("ChangeMessageVisibilityBatch", body, Duration::from_secs(15)).await {
            tracing::warn!(queue = %self.queue, error = %e, "changing the visibility of messages failed");
        }
    }

    /// Deletes the stored messages; entries SQS reports failed are tried once
    /// more. What stays undeleted comes again and is a duplicate.
    async fn delete(&self, receipts: &[&str]) -> Result<(), String> {
        let mut left: Vec<&str> = receipts.to_vec();
        for _ in 0..2 {
            if left.is_empty() {
                return Ok(());
            }
            let entries: Vec<Value> =
                left.iter().enumerate().map(|(i, r)| json!({"Id": i.to_string(), "ReceiptHandle": r})).collect();
            let answer = self
                .call(
                    "DeleteMessageBatch",
                    json!({"QueueUrl": self.queue_url, "Entries": entries}),
                    Duration::from_secs(15),
                )
                .await?;
            let failed: Vec<usize> = answer["Failed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["Id"].as_str().and_then(|id| id.parse().ok()))
                .collect();
            left = failed.into_iter().filter_map(|i| left.get(i).copied()).collect();
        }
        if !left.is_empty() {
            tracing::warn!(queue = %self.queue, messages = left.len(), "SQS did not delete stored messages; they come again as duplicates");
        }
        Ok(())
    }

    fn message(&self, m: &Value) -> InboundMessage {
        let mut attributes: Vec<(String, String)> = Vec::new();
        if let Some(system) = m["Attributes"].as_object() {
            attributes.extend(system.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))));
        }
        if let Some(own) = m["MessageAttributes"].as_object() {
            attributes.extend(own.iter().filter_map(|(k, v)| {
                let value = v["StringValue"].as_str().or_else(|| v["BinaryValue"].as_str())?;
                Some((k.clone(), value.to_owned()))
            }));
        }
        InboundMessage {
            source_ref: self.queue.clone(),
            dedup_key: m["MessageId"].as_str().map(str::to_owned),
            attributes,
            payload: m["Body"].as_str().unwrap_or_default().as_bytes().to_vec(),
            received_at: now_ms(),
            progress: vec![],
        }
    }

    /// Hands a received batch to the sink and deletes what it stored.
    /// `Ok(true)`: the receiver is stopping.
    async fn take(&self, sink: &dyn IngressSink, messages: &[Value], visibility: u64) -> Result<bool, String> {
        let receipts: Vec<&str> = messages.iter().map(|m| m["ReceiptHandle"].as_str().unwrap_or_default()).collect();
        let every = Duration::from_secs((visibility / 2).max(1));
        let batch = messages.iter().map(|m| self.message(m)).collect();
        let batched = store_batch(sink, batch, every, |n| self.set_visibility(&receipts[n..], visibility)).await;
        let (stored, failed) = (batched.stored, batched.error);
        let deleted = self.delete(&receipts[..stored]).await;
        match failed {
            None => deleted.map(|()| false),
            Some(e) => {
                self.set_visibility(&receipts[stored..], 0).await;
                if sink.stopping().now_or_never().is_some() {
                    Ok(true)
                } else {
                    Err(e)
                }
            }
        }
    }
}

#[async_trait]
impl Ingress for SqsIngress {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        let check = json!({"QueueUrl": self.queue_url, "AttributeNames": ["VisibilityTimeout"]});
        let attributes = tokio::select! {
            found = self.call("GetQueueAttributes", check, Duration::from_secs(15)) => found?,
            _ = sink.stopping() => return Ok(()),
        };
        let visibility = attributes["Attributes"]["VisibilityTimeout"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(30)
            .max(2);
        sink.link(LinkEvent::Connected);
        let receive = json!({
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": BATCH,
            "WaitTimeSeconds": LONG_POLL_S,
            "MessageAttributeNames": ["All"],
            "MessageSystemAttributeNames": ["All"],
        });
        loop {
            let received = tokio::select! {
                r = self.call("ReceiveMessage", receive.clone(), Duration::from_secs(LONG_POLL_S + 10)) => r?,
                // A receive cut short leaves what it took invisible until its timeout; then it comes again.
                _ = sink.stopping() => return Ok(()),
            };
            let messages = received["Messages"].as_array().map(Vec::as_slice).unwrap_or_default();
            if !messages.is_empty() && self.take(sink, messages, visibility).await? {
                return Ok(());
            }
        }
    }
}
