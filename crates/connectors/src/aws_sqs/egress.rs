//! One SQS SendMessage per record.
use async_trait::async_trait;
use serde_json::json;
use switchyard_core::{Integration, IntegrationId};

use crate::aws::Aws;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, SendResult};
use crate::shared::{published, Settings};

pub struct SqsEgress {
    aws: Aws,
    queue_url: String,
    fifo: bool,
    integration: IntegrationId,
    http: crate::http::HttpClient,
}

impl SqsEgress {
    pub fn new(integration: &Integration, ctx: &EgressContext) -> Result<Self, BuildError> {
        let queue_url = Settings::of(integration)?.required("queueUrl")?.to_owned();
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
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
        let message_id = |json: &str| {
            serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v["MessageId"].as_str().map(str::to_owned))
        };
        self.aws.call(&self.http, "sqs", &headers, request.to_string(), target, message_id).await
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.aws.rate)
    }
}
