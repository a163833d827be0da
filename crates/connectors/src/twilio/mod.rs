//! SMS and PHONE (EGRESS) through a Twilio-compatible REST API: a text, or a
//! voice call that speaks the record (TwiML `<Say>`), to each active
//! recipient. Phone recipients are verified with a code sent by SMS.
mod client;
mod config;
mod egress;

pub use client::Client;
pub use config::{properties, Channel, TwilioConfig};
pub use egress::TwilioEgress;

use switchyard_core::{Globals, Integration, Recipient, RecipientKind};

use crate::egress::{BuildError, Egress, EgressContext};
use crate::{Category, ConnectorType, DirectionSupport};

fn build(
    integration: &Integration,
    globals: &Globals,
    recipients: &[Recipient],
    ctx: &EgressContext,
) -> Result<Box<dyn Egress>, BuildError> {
    Ok(Box::new(TwilioEgress::new(
        TwilioConfig::from_integration(integration)?,
        integration,
        globals,
        recipients,
        ctx,
    )?))
}

/// Texts the verification code through the integration's account.
fn send_code<'a>(
    integration: &'a Integration,
    to: &'a str,
    code: &'a str,
    ctx: &'a EgressContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
    Box::pin(async move {
        let config = TwilioConfig::from_integration(integration).map_err(|e| e.to_string())?;
        let client = Client::new(&config, ctx);
        let text = format!("Your Switchyard verification code is {code}. It expires in 10 minutes.");
        let Err(failure) = client.message(to, &text).await else { return Ok(()) };
        // The caller waits for this answer: what a non-public target said
        // stays in the log, or the API would tell which internal ports answer.
        let host = url::Url::parse(&config.api).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
        if crate::policy::resolves_public(&host).await {
            return Err(failure.reason);
        }
        tracing::warn!(integration = %integration.id, error = %failure.reason, "sending a verification code failed");
        Err(format!("the provider at {host}, not a public address, did not accept the message (its answer is in the server log)"))
    })
}

fn connector(key: &'static str, name: &'static str, description: &'static str, channel: Channel) -> ConnectorType {
    ConnectorType {
        key: key.into(),
        name: name.into(),
        description: description.into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::egress(properties(channel), config::check, build)],
        message: crate::Message::Published,
        recipients: Some(RecipientKind::Phone),
        send_code: Some(send_code),
    }
}

pub fn sms() -> ConnectorType {
    connector("SMS", "SMS", "Send a text message per alarm or event to a list of verified numbers.", Channel::Sms)
}

pub fn phone() -> ConnectorType {
    connector(
        "PHONE",
        "Phone call",
        "Place a voice call that speaks the alarm to a list of verified numbers.",
        Channel::Call,
    )
}
