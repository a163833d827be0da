//! The two calls Switchyard makes on a Twilio-compatible API: create a
//! message, create a call. Form-encoded, basic auth with the account SID and
//! token; answers are JSON with a `sid`, errors JSON with `code` and `message`.
use std::time::Duration;

use serde_json::Value;

use super::config::TwilioConfig;
use crate::egress::{EgressContext, Outcome};
use crate::http::{basic_auth, form as encode, HttpClient, ANSWER_MAX};

pub struct Client {
    http: HttpClient,
    base: String,
    account: String,
    token: String,
    from: String,
}

/// Why a call failed, and what that means for the delivery.
#[derive(Debug)]
pub struct Failure {
    pub outcome: Outcome,
    pub reason: String,
    pub status: Option<u16>,
}

impl Client {
    pub fn new(config: &TwilioConfig, ctx: &EgressContext) -> Client {
        Client {
            http: ctx.http.clone(),
            base: format!("{}/2010-04-01/Accounts/{}", config.api, config.account_sid),
            account: config.account_sid.clone(),
            token: config.auth_token.expose().to_owned(),
            from: config.from.clone(),
        }
    }

    /// Sends a text; returns the message's SID.
    pub async fn message(&self, to: &str, body: &str) -> Result<String, Failure> {
        self.create("Messages.json", &[("To", to), ("From", &self.from), ("Body", body)]).await
    }

    /// Places a call that runs `twiml`; returns the call's SID.
    pub async fn call(&self, to: &str, twiml: &str) -> Result<String, Failure> {
        self.create("Calls.json", &[("To", to), ("From", &self.from), ("Twiml", twiml)]).await
    }

    async fn create(&self, resource: &str, form: &[(&str, &str)]) -> Result<String, Failure> {
        if let Some(blocked) = self.http.refuses(&self.base) {
            let reason = blocked.to_string();
            return Err(Failure {
                outcome: Outcome::Reject { reason: reason.clone(), deactivate: false },
                reason,
                status: None,
            });
        }
        let auth = basic_auth(&self.account, &self.token);
        let headers = [("authorization", auth.as_str()), ("content-type", "application/x-www-form-urlencoded")];
        let sent =
            self.http.post(&format!("{}/{resource}", self.base), &headers, encode(form), Duration::from_secs(15)).await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("the API could not be reached: {e}");
                let outcome = if e.is_permanent() {
                    Outcome::Reject { reason: reason.clone(), deactivate: false }
                } else {
                    Outcome::Retry { after: None, reason: reason.clone() }
                };
                return Err(Failure { outcome, reason, status: None });
            }
        };
        let status = response.status();
        let retry_after = response.retry_after();
        let answer: Value = serde_json::from_slice(&response.bytes(ANSWER_MAX).await).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            if let Some(sid) = answer["sid"].as_str() {
                return Ok(sid.to_owned());
            }
        }
        let reason = match (answer["code"].as_u64(), answer["message"].as_str()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (None, Some(message)) => message.to_owned(),
            _ => format!("HTTP {status}"),
        };
        let outcome = if status == 429 {
            Outcome::Retry { after: retry_after.or(Some(Duration::from_secs(1))), reason: reason.clone() }
        } else if status >= 500 || (200..300).contains(&status) {
            Outcome::Retry { after: None, reason: reason.clone() }
        } else {
            // 400 (an invalid or unreachable number), 401 (credentials), 403, 404: retrying cannot help.
            Outcome::Reject { reason: reason.clone(), deactivate: false }
        };
        Err(Failure { outcome, reason, status: Some(status) })
    }
}
