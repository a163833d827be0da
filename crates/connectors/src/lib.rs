//! The connector registry. `registry()` is a plain list: the API, CLI and
//! console read the catalog from it, so adding a connector touches only its
//! folder and one line here.
use std::sync::OnceLock;

use switchyard_core::spec::{PropertySpec, Resolved, Text};
use switchyard_core::{Direction, Globals, Integration, IntegrationId, Org, Recipient, ValidationErrors};

pub mod amqp;
mod aws;
pub mod aws_sns;
pub mod aws_sqs;
pub mod connection;
pub mod decode;
pub mod egress;
pub mod email;
pub mod event_hubs;
pub mod gcp_pubsub;
pub mod http;
pub mod http_inbound;
pub mod http_poll;
pub mod ingress;
pub mod kafka;
pub mod mqtt;
pub mod nats;
mod notify;
pub mod particle;
mod planned;
pub mod policy;
pub mod poll;
pub mod shared;
mod tls;
pub mod twilio;
pub mod utility_data;
pub mod weather;
pub mod webhook;
pub mod websocket;

pub use egress::{BuildError, Egress, EgressContext, Outbound, Outcome, Resources, Response, SendResult};
pub use ingress::{
    BuildEndpoint, BuildIngress, Endpoint, InboundRequest, Ingress, IngressSink, LinkEvent, PollOutcome, PollReport,
    Refusal,
};
pub use policy::EgressPolicy;

/// Standard types are offered to every organization; custom (first-party)
/// types only to organizations enabled for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Standard,
    Custom,
}

/// What a direction of a type is: only the roles that build something run,
/// so a direction becomes available by being given its builder, and
/// nothing else can mark it available.
#[derive(Clone, Copy)]
pub enum Role {
    /// Listed as coming soon ("disabled"), with the properties it will take:
    /// the catalog never offers what cannot run end to end.
    Planned(Direction),
    /// Builds the sender of an EGRESS integration.
    Egress(BuildEgress),
    /// Builds the receiver of an INGRESS integration, which the engine supervises.
    Ingress(BuildIngress),
    /// Builds the endpoint of an INGRESS integration that sources post to
    /// (HTTP inbound), which the engine keeps open while it is enabled.
    Endpoint(BuildEndpoint),
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Planned(d) => write!(f, "Planned({d:?})"),
            Self::Egress(_) => f.write_str("Egress"),
            Self::Ingress(_) => f.write_str("Ingress"),
            Self::Endpoint(_) => f.write_str("Endpoint"),
        }
    }
}

/// One direction a type supports: what it is, and what it takes.
#[derive(Debug, Clone)]
pub struct DirectionSupport {
    pub role: Role,
    pub properties: Vec<PropertySpec>,
    /// Checks across properties that the specs cannot express (422 on failure).
    pub check: fn(&Resolved) -> Result<(), ValidationErrors>,
    /// At create: fills in generated values; returns those to show once.
    pub prepare: fn(&mut Resolved) -> Vec<(&'static str, String)>,
    /// At update, after validation: adjusts the new state given the old one
    /// (a webhook keeps its previous signing secret for a while).
    pub on_update: fn(&Resolved, &mut Resolved, i64),
}

impl DirectionSupport {
    /// An EGRESS direction with nothing to generate or carry over.
    pub fn egress(
        properties: Vec<PropertySpec>,
        check: fn(&Resolved) -> Result<(), ValidationErrors>,
        build: BuildEgress,
    ) -> Self {
        Self::of(Role::Egress(build), properties, check)
    }

    /// An INGRESS direction with nothing to generate or carry over.
    pub fn ingress(
        properties: Vec<PropertySpec>,
        check: fn(&Resolved) -> Result<(), ValidationErrors>,
        build: BuildIngress,
    ) -> Self {
        Self::of(Role::Ingress(build), properties, check)
    }

    /// An INGRESS direction that sources post to.
    pub fn endpoint(
        properties: Vec<PropertySpec>,
        check: fn(&Resolved) -> Result<(), ValidationErrors>,
        build: BuildEndpoint,
    ) -> Self {
        Self::of(Role::Endpoint(build), properties, check)
    }

    /// A direction listed as coming soon, with the properties it will take.
    pub fn planned(direction: Direction, properties: Vec<PropertySpec>) -> Self {
        Self::of(Role::Planned(direction), properties, no_check)
    }

    fn of(role: Role, properties: Vec<PropertySpec>, check: fn(&Resolved) -> Result<(), ValidationErrors>) -> Self {
        DirectionSupport { role, properties, check, prepare: nothing_to_prepare, on_update: nothing_on_update }
    }

    pub fn direction(&self) -> Direction {
        match self.role {
            Role::Planned(d) => d,
            Role::Egress(_) => Direction::Egress,
            Role::Ingress(_) | Role::Endpoint(_) => Direction::Ingress,
        }
    }

    /// Whether integrations of this direction can be created: it builds something that runs.
    pub fn available(&self) -> bool {
        !matches!(self.role, Role::Planned(_))
    }
}

/// Makes the sender for one integration from its settings.
/// `recipients`: the active recipients of notification types (empty for others).
pub type BuildEgress = fn(&Integration, &Globals, &[Recipient], &EgressContext) -> Result<Box<dyn Egress>, BuildError>;

/// For types with nothing to check or generate.
pub fn no_check(_: &Resolved) -> Result<(), ValidationErrors> {
    Ok(())
}

pub fn nothing_to_prepare(_: &mut Resolved) -> Vec<(&'static str, String)> {
    vec![]
}

pub fn nothing_on_update(_: &Resolved, _: &mut Resolved, _: i64) {}

/// What the far side receives for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// The record itself, as stored (webhooks).
    Record,
    /// The published-data shape of cloud integrations ([`shared::published`]).
    Published,
}

/// A catalog entry: one integration type.
#[derive(Debug, Clone)]
pub struct ConnectorType {
    /// Owned text so that types defined as data (an organization's own,
    /// published definitions) are the same shape as the registry's.
    pub key: Text,
    pub name: Text,
    pub description: Text,
    pub category: Category,
    pub directions: Vec<DirectionSupport>,
    pub message: Message,
    /// Notification types: the kind of recipient they reach (managed under
    /// the integration's recipients).
    pub recipients: Option<switchyard_core::RecipientKind>,
    /// Phone types: sends a verification code to a number (SMS).
    pub send_code: Option<SendCode>,
}

/// Sends `code` to the phone number `to` through the integration's provider.
pub type SendCode = for<'a> fn(
    &'a Integration,
    &'a str,
    &'a str,
    &'a EgressContext,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

impl ConnectorType {
    pub fn direction(&self, direction: Direction) -> Option<&DirectionSupport> {
        self.directions.iter().find(|d| d.direction() == direction)
    }
    pub fn is_available(&self) -> bool {
        self.directions.iter().any(DirectionSupport::available)
    }
    /// The sender for an integration of this type.
    /// `globals`: the organization's values, for templated properties.
    pub fn build_egress(
        &self,
        integration: &Integration,
        globals: &Globals,
        recipients: &[Recipient],
        ctx: &EgressContext,
    ) -> Result<Box<dyn Egress>, BuildError> {
        match self.direction(integration.direction).map(|d| d.role) {
            Some(Role::Egress(build)) => build(integration, globals, recipients, ctx),
            _ => Err(BuildError::Config(format!("{} cannot send yet", self.key))),
        }
    }

    /// The data a delivery of `record` publishes, as the delivery log shows it.
    pub fn published_data(
        &self,
        record: &switchyard_core::Record,
        integration: &IntegrationId,
        delivery_id: &str,
    ) -> serde_json::Value {
        match self.message {
            Message::Record => serde_json::to_value(record).unwrap_or_default(),
            Message::Published => shared::published(record, integration, delivery_id),
        }
    }

    pub fn offered_to(&self, org: &Org) -> bool {
        self.category == Category::Standard || org.custom_integrations
    }
}

/// Every integration type Switchyard knows, in catalog order.
pub fn registry() -> &'static [ConnectorType] {
    static REGISTRY: OnceLock<Vec<ConnectorType>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut types = vec![
            webhook::connector_type(),
            mqtt::connector_type(),
            http_inbound::connector_type(),
            http_poll::connector_type(),
            websocket::connector_type(),
            particle::connector_type(),
            weather::connector_type(),
            utility_data::connector_type(),
            amqp::connector_type(),
            nats::connector_type(),
            aws_sns::connector_type(),
            aws_sqs::connector_type(),
            gcp_pubsub::connector_type(),
            event_hubs::connector_type(),
            kafka::connector_type(),
            email::connector_type(),
            twilio::sms(),
            twilio::phone(),
        ];
        types.extend(planned::types());
        types
    })
}

/// The types one organization sees: the registry's (custom ones once it is
/// enabled for them), then the organization's own types, defined as data.
/// Every lookup by key of a type an organization may use goes through here.
#[derive(Clone, Copy)]
pub struct Catalog<'a> {
    org: &'a Org,
    own: &'a [ConnectorType],
}

impl<'a> Catalog<'a> {
    /// `own`: the organization's published definitions (an own type never
    /// shadows a registry type of the same key).
    pub fn new(org: &'a Org, own: &'a [ConnectorType]) -> Self {
        Self { org, own }
    }

    /// The registry as the organization sees it, before it has types of its own.
    pub fn registry(org: &'a Org) -> Self {
        Self::new(org, &[])
    }

    pub fn types(&self) -> impl Iterator<Item = &'a ConnectorType> + 'a {
        let org = self.org;
        registry().iter().filter(move |t| t.offered_to(org)).chain(self.own.iter().filter(|t| find(&t.key).is_none()))
    }

    /// A type by key (a custom type the organization is not enabled for
    /// does not exist for it).
    pub fn find(&self, key: &str) -> Option<&'a ConnectorType> {
        self.types().find(|t| t.key == key)
    }
}

/// A registry type by key, whoever asks (for running integrations that exist).
pub fn find(key: &str) -> Option<&'static ConnectorType> {
    registry().iter().find(|t| t.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_are_unique_per_direction_and_specs_are_consistent() {
        let mut seen = HashSet::new();
        for t in registry() {
            for d in &t.directions {
                assert!(seen.insert((&*t.key, d.direction())), "{} listed twice", t.key);
                let mut names = HashSet::new();
                for p in &d.properties {
                    assert!(names.insert(&*p.name), "{}.{} twice", t.key, p.name);
                    if let Some(c) = &p.required_when {
                        assert!(
                            d.properties.iter().any(|q| q.name == c.property),
                            "{}.{} depends on unknown",
                            t.key,
                            p.name
                        );
                    }
                    if p.kind == switchyard_core::spec::PropertyKind::Enum {
                        assert!(!p.options.is_empty(), "{}.{} enum without options", t.key, p.name);
                    }
                }
            }
        }
    }

    #[test]
    fn the_catalog_is_the_registry_then_the_organizations_own_types() {
        let org = |custom| Org {
            id: switchyard_core::OrgId::new(),
            name: "o".into(),
            custom_integrations: custom,
            created_at: 0,
        };
        // A type defined as data: owned strings, as a published definition gives them.
        let defined = |key: &str| ConnectorType {
            key: key.to_owned().into(),
            name: format!("{key} meter").into(),
            description: String::from("read from a definition").into(),
            category: Category::Custom,
            directions: vec![DirectionSupport::planned(
                Direction::Ingress,
                vec![PropertySpec::new(
                    String::from("meterId"),
                    "Meter".to_owned(),
                    switchyard_core::spec::PropertyKind::String,
                )],
            )],
            message: Message::Record,
            recipients: None,
            send_code: None,
        };
        let own = [defined("ACME_METER"), defined("WEBHOOK")];
        let plain = org(false);
        let types = Catalog::new(&plain, &own);
        let keys: Vec<&str> = types.types().map(|t| &*t.key).collect();
        assert_eq!(keys.last(), Some(&"ACME_METER"), "own types come after the registry");
        assert_eq!(keys.iter().filter(|k| **k == "WEBHOOK").count(), 1, "an own type never shadows the registry");
        assert!(!keys.contains(&"LUA_SCRIPT"), "custom registry types only once enabled");
        let found = types.find("ACME_METER").expect("found by key");
        assert_eq!(found.direction(Direction::Ingress).unwrap().properties[0].name, "meterId");
        assert!(std::ptr::eq(types.find("WEBHOOK").unwrap(), find("WEBHOOK").unwrap()));
        let enabled = org(true);
        assert!(Catalog::registry(&enabled).find("LUA_SCRIPT").is_some());
        assert!(Catalog::registry(&enabled).find("ACME_METER").is_none(), "own types belong to their organization");
    }

    #[test]
    fn only_working_connectors_are_available() {
        let available: Vec<_> = registry()
            .iter()
            .flat_map(|t| t.directions.iter().filter(|d| d.available()).map(move |d| (&*t.key, d.direction())))
            .collect();
        assert_eq!(
            available,
            [
                ("WEBHOOK", Direction::Egress),
                ("MQTT", Direction::Ingress),
                ("MQTT", Direction::Egress),
                ("HTTP_INBOUND", Direction::Ingress),
                ("HTTP_POLL", Direction::Ingress),
                ("WEBSOCKET", Direction::Ingress),
                ("PARTICLE", Direction::Ingress),
                ("WEATHER", Direction::Ingress),
                ("UTILITY_DATA", Direction::Ingress),
                ("AMQP", Direction::Egress),
                ("NATS", Direction::Egress),
                ("AWS_SNS", Direction::Egress),
                ("AWS_SQS", Direction::Ingress),
                ("AWS_SQS", Direction::Egress),
                ("GCP_PUBSUB", Direction::Ingress),
                ("GCP_PUBSUB", Direction::Egress),
                ("AZURE_EVENT_HUBS", Direction::Ingress),
                ("AZURE_EVENT_HUBS", Direction::Egress),
                ("KAFKA", Direction::Egress),
                ("EMAIL", Direction::Egress),
                ("SMS", Direction::Egress),
                ("PHONE", Direction::Egress)
            ]
        );
    }
}
