//! Pub/Sub properties and the service-account key.
use serde::Deserialize;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Integration, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::{objects_property, rate_property, Settings};

pub const DEFAULT_ENDPOINT: &str = "https://pubsub.googleapis.com";

/// The properties both directions share; `topics` is the direction's own.
pub fn common(topics: P) -> Vec<P> {
    vec![
        P::new("accountKeyJson", "Service account key (JSON)", K::Secret)
            .required()
            .describe("The key file of a service account with the Pub/Sub Publisher role."),
        P::new("projectId", "Project id", K::String).describe("Defaults to the project of the account key."),
        topics,
        P::new("endpointUrl", "Endpoint URL", K::Url).describe("Defaults to https://pubsub.googleapis.com."),
    ]
}

pub fn properties() -> Vec<P> {
    let mut props = common(
        P::new("topic", "Topic", K::String)
            .required()
            .describe("`projects/my-project/topics/readings`, or just `readings` in the project."),
    );
    props.push(objects_property());
    props.push(rate_property());
    props
}

/// The subscribing direction's properties: the key, project and endpoint,
/// the topics (each may be a template over the globals), then the decoding ones.
pub fn ingress_properties() -> Vec<P> {
    let mut props = common(P::new("topics", "Topics", K::List).required().templated().describe(
        "Topics to subscribe to (`projects/p/topics/t`, or names in the project): a subscription each, created \
             when missing.",
    ));
    props.extend([
        P::new("subscription", "Subscription", K::String).describe(
            "With one topic: the subscription to pull (created when missing). Otherwise each topic's is \
             `switchyard-<integration id>-<topic>`.",
        ),
        P::new("ackDeadlineSeconds", "Ack deadline (s)", K::Number)
            .range(10.0, 600.0)
            .default(serde_json::json!(60))
            .describe("Of the subscriptions created; extended while messages wait to be stored."),
    ]);
    props.extend(crate::decode::properties());
    props
}

/// The key, each topic's name, the subscription's, and the decoding.
pub fn check_ingress(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = ingress_properties();
    let s = Settings::of_resolved(&specs, resolved);
    let mut errors = ValidationErrors::default();
    let project = checked_project(&s, &mut errors);
    for (i, topic) in s.strings("topics").unwrap_or_default().iter().enumerate() {
        if !topic.contains("{{") {
            if let Err(e) = topic_name(topic, project.as_deref()) {
                errors.push(format!("properties.topics[{i}]"), e);
            }
        }
    }
    if let Some(name) = s.text("subscription").ok().flatten() {
        let ok = (3..=255).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c));
        if !ok {
            errors
                .push("properties.subscription", "must be 3 to 255 letters, digits or -_.~+%, starting with a letter");
        }
    }
    crate::decode::check(resolved, &specs, errors)
}

/// The fields of a service-account key file Switchyard uses.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountKey {
    #[serde(rename = "type")]
    pub kind: String,
    pub project_id: Option<String>,
    pub private_key: String,
    pub client_email: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

impl AccountKey {
    pub fn parse(json: &str) -> Result<AccountKey, String> {
        let key: AccountKey = serde_json::from_str(json).map_err(|e| format!("is not a service account key: {e}"))?;
        if key.kind != "service_account" {
            return Err(format!("is a `{}` key, not a service_account key", key.kind));
        }
        super::token::signing_key(&key.private_key)?;
        Ok(key)
    }
}

pub struct PubSubConfig {
    pub key: AccountKey,
    /// `projects/{project}/topics/{topic}`.
    pub topic: String,
    pub endpoint: String,
    pub rate: f64,
}

/// The full topic name from `topic` (full or short) and the project.
pub fn topic_name(topic: &str, project: Option<&str>) -> Result<String, String> {
    if let Some(rest) = topic.strip_prefix("projects/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [p, "topics", t] if !p.is_empty() && !t.is_empty() => Ok(topic.to_owned()),
            _ => Err("must be projects/PROJECT/topics/TOPIC or a topic name".into()),
        };
    }
    if topic.is_empty() || topic.contains('/') {
        return Err("must be projects/PROJECT/topics/TOPIC or a topic name".into());
    }
    let project = project.ok_or("needs a project: set projectId, or use a key that names one")?;
    Ok(format!("projects/{project}/topics/{topic}"))
}

impl PubSubConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let specs = properties();
        let s = Settings::new(&specs, i);
        let bad = BuildError::Config;
        let json = s.need_secret("accountKeyJson")?;
        let key = AccountKey::parse(json.expose()).map_err(|e| bad(format!("accountKeyJson {e}")))?;
        let project = s.text("projectId")?.map(str::to_owned).or_else(|| key.project_id.clone());
        let topic = topic_name(s.required("topic")?, project.as_deref()).map_err(|e| bad(format!("topic {e}")))?;
        Ok(Self {
            key,
            topic,
            endpoint: s.text("endpointUrl")?.unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/').to_owned(),
            rate: s.rate()?,
        })
    }
}

/// Checks the account key (both directions); the project: `projectId`, else the key's.
fn checked_project(s: &Settings<'_>, errors: &mut ValidationErrors) -> Option<String> {
    let key = s.secret("accountKeyJson").ok().flatten().map(|k| AccountKey::parse(k.expose()));
    if let Some(Err(e)) = &key {
        errors.push("properties.accountKeyJson", e.clone());
    }
    s.text("projectId")
        .ok()
        .flatten()
        .map(str::to_owned)
        .or_else(|| key.and_then(Result::ok).and_then(|k| k.project_id))
}

/// The key must be a service-account key with a usable RSA private key; the
/// topic must resolve to a full name.
pub fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    let project = checked_project(&s, &mut errors);
    if let Some(topic) = s.text("topic").ok().flatten() {
        if let Err(e) = topic_name(topic, project.as_deref()) {
            errors.push("properties.topic", e);
        }
    }
    errors.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_full_names_or_short_ones_in_the_project() {
        assert_eq!(topic_name("projects/p/topics/t", None).unwrap(), "projects/p/topics/t");
        assert_eq!(topic_name("t", Some("p")).unwrap(), "projects/p/topics/t");
        assert!(topic_name("t", None).is_err());
        assert!(topic_name("projects/p/t", Some("p")).is_err());
        assert!(topic_name("a/b", Some("p")).is_err());
    }
}
