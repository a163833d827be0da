//! One text or call per active recipient for each delivery.
use async_trait::async_trait;
use switchyard_core::{Integration, IntegrationId, Metadata, OrgId, Recipient};

use super::client::Client;
use super::config::{Channel, TwilioConfig};
use crate::egress::{BuildError, Egress, EgressContext, Outbound, Outcome, Response, SendResult};
use crate::notify::Scope;
use crate::shared::{reject, Template};

pub struct TwilioEgress {
    channel: Channel,
    rate: f64,
    org: OrgId,
    integration: IntegrationId,
    to: Vec<String>,
    template: Template,
    client: Client,
    ctx: EgressContext,
    target: String,
}

impl TwilioEgress {
    pub fn new(
        config: TwilioConfig,
        integration: &Integration,
        globals: &Metadata,
        recipients: &[Recipient],
        ctx: &EgressContext,
    ) -> Result<Self, BuildError> {
        let name = if config.channel == Channel::Call { "speechTemplate" } else { "bodyTemplate" };
        let source = config.template.clone().ok_or_else(|| BuildError::Config(format!("{name} is not set")))?;
        let resource = if config.channel == Channel::Call { "Calls" } else { "Messages" };
        Ok(Self {
            target: format!("{}/2010-04-01/Accounts/{}/{resource}.json", config.api, config.account_sid),
            channel: config.channel,
            rate: config.rate,
            org: integration.org_id.clone(),
            integration: integration.id.clone(),
            to: recipients.iter().map(|r| r.address.clone()).collect(),
            template: Template::lenient(name, &source, globals)?,
            client: Client::new(&config, ctx),
            ctx: ctx.clone(),
        })
    }
}

/// TwiML that speaks `text`.
pub fn say(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;");
    format!("<Response><Say>{escaped}</Say></Response>")
}

#[async_trait]
impl Egress for TwilioEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        if self.to.is_empty() {
            return reject(&self.target, "nothing sent: the integration has no active (verified) recipients");
        }
        let scope = Scope::of(&self.ctx, &self.org, &self.integration, message.record, message.delivery_id).await;
        let text = match scope.render(&self.template, message.record) {
            Ok(t) if !t.trim().is_empty() => t,
            Ok(_) => return reject(&self.target, "the template rendered nothing to send"),
            Err(e) => return reject(&self.target, e),
        };
        let mut sids = Vec::new();
        let mut failures = Vec::new();
        let mut retry = None;
        let mut status = None;
        for to in &self.to {
            let sent = match self.channel {
                Channel::Sms => self.client.message(to, &text).await,
                Channel::Call => self.client.call(to, &say(&text)).await,
            };
            match sent {
                Ok(sid) => sids.push(sid),
                Err(f) => {
                    status = f.status.or(status);
                    if let Outcome::Retry { after, .. } = f.outcome {
                        retry = Some(after);
                    }
                    failures.push(format!("{to}: {}", f.reason));
                }
            }
        }
        let response = Response { status, remote_id: (!sids.is_empty()).then(|| sids.join(",")), excerpt: None };
        let outcome = if failures.is_empty() {
            Outcome::Delivered
        } else {
            let reason = format!("sent to {} of {}; {}", sids.len(), self.to.len(), failures.join("; "));
            match retry {
                // Worth another try: every recipient gets it again (at least once).
                Some(after) => Outcome::Retry { after, reason },
                None => Outcome::Reject { reason, deactivate: false },
            }
        };
        SendResult { sent: None, outcome, response, target: self.target.clone() }.with_sent(&text)
    }

    fn rate_limit(&self) -> Option<f64> {
        Some(self.rate)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn speech_is_escaped_inside_say() {
        assert_eq!(
            super::say("door <open> & \"alarm\""),
            "<Response><Say>door &lt;open&gt; &amp; &quot;alarm&quot;</Say></Response>"
        );
    }
}
