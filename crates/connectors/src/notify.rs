//! What the notification connectors (e-mail, SMS, phone) share: templates
//! rendered with the record, its device and Place, the organization's
//! globals and the published message.
use serde_json::Value;
use switchyard_core::{IntegrationId, OrgId, Record};

use crate::egress::EgressContext;
use crate::shared::{published, Template};

/// Everything a notification template may use.
pub struct Scope {
    resources: Value,
    published: Value,
}

impl Scope {
    pub async fn of(
        ctx: &EgressContext,
        org: &OrgId,
        integration: &IntegrationId,
        record: &Record,
        delivery_id: &str,
    ) -> Scope {
        Scope {
            resources: ctx.describe(org, &record.device_id).await,
            published: published(record, integration, delivery_id),
        }
    }

    /// `record`, `device`, `place`, `globals` and `published`.
    pub fn render(&self, template: &Template, record: &Record) -> Result<String, String> {
        let part = |name: &str| minijinja::Value::from_serialize(self.resources.get(name).unwrap_or(&Value::Null));
        template.render(
            record,
            &[
                ("device", part("device")),
                ("place", part("place")),
                ("published", minijinja::Value::from_serialize(&self.published)),
            ],
        )
    }
}
