//! SMS and PHONE properties: the account, the sender and the template.
use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, Secret, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{rate_property, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Call,
}

pub const DEFAULT_API: &str = "https://api.twilio.com";

pub fn properties(channel: Channel) -> Vec<P> {
    let template = match channel {
        Channel::Sms => P::new("bodyTemplate", "Message template", K::Template).required().default(json!(
            "{{ record.kind | upper }} {{ record.property }} = {{ record.payload | tojson }} on {{ device.name or record.deviceId }}{% if place %} ({{ place.name }}){% endif %}"
        )),
        Channel::Call => P::new("speechTemplate", "Speech template", K::Template).required().default(json!(
            "Switchyard {{ record.kind }}. {{ record.property }} is {{ record.payload | tojson }} on {{ device.name or 'a device' }}{% if place %} at {{ place.name }}{% endif %}."
        )),
    };
    vec![
        P::new("accountSid", "Account SID", K::String).required(),
        P::new("authToken", "Auth token", K::Secret).required(),
        P::new("fromNumber", "From number", K::Phone).required(),
        P::new("apiBaseUrl", "API base URL", K::Url)
            .default(json!(DEFAULT_API))
            .describe("A Twilio-compatible API; the path /2010-04-01/Accounts/{sid}/… is appended."),
        template,
        rate_property(),
    ]
}

pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    pub from: String,
    pub api: String,
    pub template: Option<String>,
    pub channel: Channel,
    pub rate: f64,
}

impl TwilioConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let channel = if i.type_key == "PHONE" { Channel::Call } else { Channel::Sms };
        let template_name = if channel == Channel::Call { "speechTemplate" } else { "bodyTemplate" };
        let specs = properties(channel);
        let s = Settings::new(&specs, i);
        Ok(Self {
            account_sid: s.required("accountSid")?.to_owned(),
            auth_token: s.need_secret("authToken")?,
            from: s.required("fromNumber")?.to_owned(),
            api: s.text("apiBaseUrl")?.unwrap_or(DEFAULT_API).trim_end_matches('/').to_owned(),
            template: s.text(template_name)?.map(str::to_owned),
            channel,
            rate: s.rate()?,
        })
    }
}

/// Account SIDs are `AC` and 32 hex digits.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    // The account is the same property for both channels.
    let specs = properties(Channel::Sms);
    if let Some(sid) = Settings::of_resolved(&specs, resolved).text("accountSid").ok().flatten() {
        let ok = sid.len() == 34 && sid.starts_with("AC") && sid[2..].chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            errors.push("properties.accountSid", "must be `AC` followed by 32 hexadecimal digits");
        }
    }
    errors.into_result()
}
