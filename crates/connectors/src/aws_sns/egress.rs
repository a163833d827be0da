//! One SNS Publish per record.
use async_trait::async_trait;
use switchyard_core::{Integration, IntegrationId};

use crate::aws::{xml_tag, Aws};
use crate::egress::{BuildError, Egress, EgressContext, Outbound, SendResult};
use crate::shared::{published, Settings};

pub struct SnsEgress {
    aws: Aws,
    topic_arn: String,
    fifo: bool,
    integration: IntegrationId,
    http: crate::http::HttpClient,
}

impl SnsEgress {
    pub fn new(integration: &Integration, ctx: &EgressContext) -> Result<Self, BuildError> {
        let topic_arn = Settings::of(integration)?.required("topicArn")?.to_owned();
        Ok(Self {
            aws: Aws::from_integration(integration, "sns")?,
            fifo: topic_arn.ends_with(".fifo"),
            topic_arn,
            integration: integration.id.clone(),
            http: ctx.http.clone(),
        })
    }
}

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

#[async_trait]
impl Egress for SnsEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        let target = &self.topic_arn;
        let body = published(message.record, &self.integration, message.delivery_id).to_string();
        let form = self.form(&body, message);
        self.aws
            .call(&self.http, "sns", &[("content-type", CONTENT_TYPE)], form, target, |xml| xml_tag(xml, "MessageId"))
            .await
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.aws.rate)
    }
}

impl SnsEgress {
    /// The Publish call, form-encoded: the message, the delivery id as a
    /// message attribute, and for FIFO topics the group and deduplication ids.
    fn form(&self, body: &str, message: &Outbound<'_>) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", "Publish")
            .append_pair("Version", "2010-03-31")
            .append_pair("TopicArn", &self.topic_arn)
            .append_pair("Message", body)
            .append_pair("MessageAttributes.entry.1.Name", "switchyard-delivery-id")
            .append_pair("MessageAttributes.entry.1.Value.DataType", "String")
            .append_pair("MessageAttributes.entry.1.Value.StringValue", message.delivery_id);
        if self.fifo {
            form.append_pair("MessageGroupId", message.record.device_id.as_str())
                .append_pair("MessageDeduplicationId", message.delivery_id);
        }
        form.finish()
    }
}
