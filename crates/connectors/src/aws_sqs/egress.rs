//! One SQS SendMessage per record.
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use switchyard_core::delivery::{excerpt, RESPONSE_EXCERPT_MAX};
use switchyard_core::{Integration, IntegrationId};

use crate::aws::{classify, Aws, AwsError};
use crate::egress::{BuildError, Egress, EgressContext, Outbound, Outcome, Response, SendResult};
use crate::shared::{published, reject, required, retry};

pub struct SqsEgress {
    aws: Aws,
    queue_url: String,
    fifo: bool,
    integration: IntegrationId,
    http: reqwest::Client,
}

impl SqsEgress {
    pub fn new(integration: &Integration, ctx: &EgressContext) -> Result<Self, BuildError> {
        let queue_url = required(&integration.properties, "queueUrl")?.to_owned();
        Ok(Self {
            aws: Aws::from_integration(integration, "sqs")?,
            fifo: queue_url.ends_with(".fifo"),
            queue_url,
            integration: integration.id.clone(),
            http: ctx.http.clone(),
        })
    }
}

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const TARGET: &str = "AmazonSQS.SendMessage";

#[async_trait]
impl Egress for SqsEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let target = &self.queue_url;
        let mut request = json!({
            "QueueUrl": self.queue_url,
            "MessageBody": published(message.record, &self.integration, message.delivery_id).to_string(),
            "MessageAttributes": {
                "switchyard-delivery-id": {"DataType": "String", "StringValue": message.delivery_id}
            }
        });
        if self.fifo {
            request["MessageGroupId"] = json!(message.record.device_id);
            request["MessageDeduplicationId"] = json!(message.delivery_id);
        }
        let body = request.to_string();
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
        let signed = match self.aws.sign("sqs", &headers, body.as_bytes()) {
            Ok(h) => h,
            Err(e) => return reject(target, format!("signing failed: {e}")),
        };
        let mut http = self.http.post(self.aws.url()).timeout(Duration::from_secs(15)).body(body);
        for (k, v) in headers {
            http = http.header(k, v);
        }
        for (k, v) in signed {
            http = http.header(k, v);
        }
        let response = match http.send().await {
            Ok(r) => r,
            Err(e) => return retry(target, format!("SQS could not be reached: {e}")),
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let mut answer =
            Response { status: Some(status), remote_id: None, excerpt: Some(excerpt(&text, RESPONSE_EXCERPT_MAX)) };
        let outcome = if (200..300).contains(&status) {
            answer.remote_id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["MessageId"].as_str().map(str::to_owned));
            Outcome::Delivered
        } else {
            classify(status, AwsError::parse(&text).as_ref())
        };
        SendResult { outcome, response: answer, target: target.clone() }
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.aws.rate)
    }
}
