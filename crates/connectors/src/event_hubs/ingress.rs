//! The Event Hubs receiver: one connection and session to the namespace,
//! the hub's partitions read from `$management`, then one receiver link per
//! partition on `{hub}/ConsumerGroups/{group}/Partitions/{id}`, filtered to
//! start after the partition's checkpoint. Each event is stored with the
//! partition's new checkpoint (its offset and sequence number) in the same
//! transaction, so the checkpoint is the acknowledgement: a restart resumes
//! after the last event stored, and an event stored again (the same
//! partition and sequence number) is a duplicate.
use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::link::RecvError;
use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, Properties, Source};
use fe2o3_amqp::types::primitives::{OrderedMap, Symbol, Value};
use fe2o3_amqp::Receiver;
use fe2o3_amqp_management::client::MgmtClient;
use fe2o3_amqp_management::error::Error as MgmtError;
use fe2o3_amqp_management::request::Request;
use fe2o3_amqp_management::response::Response;
use serde_amqp::{described::Described, descriptor::Descriptor};
use switchyard_core::{now_ms, InboundMessage, Integration, IntegrationId};
use tokio::sync::mpsc;

use super::config::{IngressConfig, Start};
use super::link::{self, Opened, TIMEOUT};
use crate::egress::{BuildError, EgressContext, Outcome};
use crate::ingress::{Handover, Ingress, IngressSink, LinkEvent};
use crate::policy::EgressPolicy;

/// Events being stored at once, at most; beyond that the links get no new
/// credit, so the hub holds the rest.
const IN_FLIGHT: usize = 64;
const SELECTOR: &str = "apache.org:selector-filter:string";
const EPOCH: &str = "com.microsoft:epoch";
/// How often a partition's checkpoint moves past events the partition-key
/// filter passed over, while nothing is being stored.
const SKIPPED_EVERY: Duration = Duration::from_secs(1);

/// Where a partition is: the last event stored (or passed over), as the
/// resume filter needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub offset: String,
    pub sequence: i64,
}

/// Where a receiver on a partition starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    After(Checkpoint),
    Start(Start),
}

impl Position {
    /// The selector filter Event Hubs takes for this position.
    fn selector(&self) -> String {
        match self {
            Position::After(c) => format!("amqp.annotation.x-opt-offset > '{}'", c.offset),
            Position::Start(Start::Earliest) => "amqp.annotation.x-opt-offset > '-1'".into(),
            Position::Start(Start::Latest) => "amqp.annotation.x-opt-offset > '@latest'".into(),
            Position::Start(Start::EnqueuedAfter(ms)) => format!("amqp.annotation.x-opt-enqueued-time > '{ms}'"),
        }
    }
}

pub struct EventHubsIngress {
    config: IngressConfig,
    policy: EgressPolicy,
    integration: IntegrationId,
}

impl EventHubsIngress {
    pub fn new(integration: &Integration, ctx: &EgressContext) -> Result<Self, BuildError> {
        Ok(Self {
            config: IngressConfig::from_integration(integration)?,
            policy: ctx.policy.clone(),
            integration: integration.id.clone(),
        })
    }

    /// The progress name of a partition's checkpoint: per hub and consumer
    /// group, so reading another hub or group starts afresh.
    fn progress_name(&self, partition: &str) -> String {
        format!("eventhubs:{}/{}/{partition}", self.config.namespace.hub, self.config.group)
    }

    fn source(&self, partition: &str) -> String {
        format!("{}/ConsumerGroups/{}/Partitions/{partition}", self.config.namespace.hub, self.config.group)
    }

    /// Where `partition` starts: after its checkpoint, else where the
    /// integration says. Starting at the latest event, the partition's last
    /// offset now is kept as its checkpoint first, so that what is sent
    /// from here on is not missed when the link opens again before an event
    /// is stored.
    async fn start_of(
        &self,
        sink: &dyn IngressSink,
        mgmt: &mut Management<'_>,
        partition: &str,
    ) -> Result<Position, String> {
        let name = self.progress_name(partition);
        if let Some(saved) = sink.progress(&name).await {
            if let Ok(checkpoint) = serde_json::from_str::<Checkpoint>(&saved) {
                return Ok(Position::After(checkpoint));
            }
        }
        if self.config.start != Start::Latest {
            return Ok(Position::Start(self.config.start));
        }
        let attributes = mgmt.read("com.microsoft:partition", Some(partition)).await?;
        let offset = attributes.get("last_enqueued_offset").and_then(text).unwrap_or_else(|| "-1".into());
        let sequence = attributes.get("last_enqueued_sequence_number").and_then(integer).unwrap_or(-1);
        let checkpoint = Checkpoint { offset, sequence };
        let value = serde_json::to_string(&checkpoint).expect("a checkpoint serializes");
        sink.save_progress(&name, &value).await?;
        Ok(Position::After(checkpoint))
    }

    async fn attach(&self, opened: &mut Opened, partition: &str, from: &Position) -> Result<Receiver, String> {
        let mut filter = OrderedMap::new();
        filter.insert(
            Symbol::from(SELECTOR),
            Value::Described(Box::new(Described {
                descriptor: Descriptor::Name(Symbol::from(SELECTOR)),
                value: Value::String(from.selector()),
            })),
        );
        let source = Source::builder().address(self.source(partition)).filter(filter).build();
        let mut builder = Receiver::builder()
            .name(format!("switchyard-{}-{partition}", self.integration))
            .source(source)
            .target(format!("switchyard-{}", self.integration))
            .credit_mode(CreditMode::Auto(IN_FLIGHT as u32));
        if let Some(level) = self.config.owner_level {
            let mut properties = OrderedMap::new();
            properties.insert(Symbol::from(EPOCH), Value::Long(level));
            builder = builder.properties(properties);
        }
        let attach = builder.attach(&mut opened.session);
        tokio::time::timeout(TIMEOUT, attach)
            .await
            .map_err(|_| format!("attaching to partition {partition} did not finish within {TIMEOUT:?}"))?
            .map_err(|e| format!("attaching to {} failed: {e}", self.source(partition)))
    }

    /// Whether an event sent with this partition key is taken.
    fn wanted(&self, key: Option<&str>) -> bool {
        let keys = &self.config.partition_keys;
        keys.is_empty() || key.is_some_and(|k| keys.iter().any(|want| want == k))
    }

    /// The event as a message to store, with the partition's checkpoint
    /// once it is stored, and its partition key.
    fn message(&self, partition: &str, event: &Message<Body<Value>>) -> (InboundMessage, Checkpoint, Option<String>) {
        let mut attributes = vec![("partition".to_owned(), partition.to_owned())];
        let mut checkpoint = Checkpoint { offset: String::new(), sequence: -1 };
        let mut key = None;
        for (name, value) in event.message_annotations.iter().flat_map(|a| a.0.iter()) {
            let fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(name) = name else { continue };
            let Some(value) = text(value) else { continue };
            // The service's annotations by the names its SDKs give them; others as they come.
            let named = match name.as_str() {
                "x-opt-offset" => {
                    checkpoint.offset = value.clone();
                    "offset"
                }
                "x-opt-sequence-number" => {
                    checkpoint.sequence = value.parse().unwrap_or(-1);
                    "sequenceNumber"
                }
                "x-opt-partition-key" => {
                    key = Some(value.clone());
                    "partitionKey"
                }
                "x-opt-enqueued-time" => "enqueuedTime",
                other => other,
            };
            attributes.push((named.to_owned(), value));
        }
        if let Some(ApplicationProperties(properties)) = &event.application_properties {
            for (name, value) in properties.iter() {
                if let Some(value) = text(&Value::from(value.clone())) {
                    attributes.push((name.clone(), value));
                }
            }
        }
        if let Some(Properties { message_id: Some(id), .. }) = &event.properties {
            let id = match id {
                fe2o3_amqp::types::messaging::MessageId::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            attributes.push(("messageId".into(), id));
        }
        let payload = match &event.body {
            Body::Data(sections) => sections.iter().flat_map(|d| d.0.to_vec()).collect(),
            Body::Value(v) => match &v.0 {
                Value::Binary(b) => b.to_vec(),
                other => text(other).unwrap_or_else(|| format!("{other:?}")).into_bytes(),
            },
            Body::Sequence(_) | Body::Empty => Vec::new(),
        };
        let progress = serde_json::to_string(&checkpoint).expect("a checkpoint serializes");
        let message = InboundMessage {
            source_ref: format!("{}/{partition}", self.config.namespace.hub),
            dedup_key: Some(format!("{partition}:{}", checkpoint.sequence)),
            attributes,
            payload,
            received_at: now_ms(),
            progress: vec![(self.progress_name(partition), progress)],
        };
        (message, checkpoint, key)
    }
}

/// A scalar annotation or property as text.
fn text(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Symbol(s) => s.as_str().to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Ubyte(n) => n.to_string(),
        Value::Ushort(n) => n.to_string(),
        Value::Uint(n) => n.to_string(),
        Value::Ulong(n) => n.to_string(),
        Value::Byte(n) => n.to_string(),
        Value::Short(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Long(n) => n.to_string(),
        Value::Float(n) => n.to_string(),
        Value::Double(n) => n.to_string(),
        Value::Timestamp(t) => t.milliseconds().to_string(),
        Value::Uuid(u) => format!("{u:?}"),
        _ => return None,
    })
}

fn integer(v: &Value) -> Option<i64> {
    text(v)?.parse().ok()
}

/// Requests to the hub's `$management` node.
struct Management<'a> {
    client: MgmtClient,
    hub: &'a str,
    token: Option<&'a str>,
}

/// `READ` of the hub (`com.microsoft:eventhub`) or one partition (`com.microsoft:partition`).
struct Read {
    hub: String,
    kind: &'static str,
    partition: Option<String>,
    token: Option<String>,
}

/// The entity's attributes, by name.
struct Attributes(OrderedMap<String, Value>);

impl Request for Read {
    const OPERATION: &'static str = "READ";
    type Response = Attributes;
    type Body = ();

    fn manageable_entity_type(&mut self) -> Option<String> {
        Some(self.kind.to_owned())
    }

    fn encode_application_properties(&mut self) -> Option<ApplicationProperties> {
        let mut properties = ApplicationProperties::builder().insert("name", self.hub.as_str());
        if let Some(p) = &self.partition {
            properties = properties.insert("partition", p.as_str());
        }
        if let Some(t) = &self.token {
            properties = properties.insert("security_token", t.as_str());
        }
        Some(properties.build())
    }

    fn encode_body(self) -> Self::Body {}
}

impl Response for Attributes {
    const STATUS_CODE: u16 = 200;
    type Body = Option<OrderedMap<String, Value>>;
    type Error = MgmtError;

    fn decode_message(message: Message<Self::Body>) -> Result<Self, Self::Error> {
        Ok(Self(message.body.unwrap_or_default()))
    }
}

impl Management<'_> {
    async fn read(&mut self, kind: &'static str, partition: Option<&str>) -> Result<OrderedMap<String, Value>, String> {
        let request = Read {
            hub: self.hub.to_owned(),
            kind,
            partition: partition.map(str::to_owned),
            token: self.token.map(str::to_owned),
        };
        let what = partition.map(|p| format!("partition {p}")).unwrap_or_else(|| format!("event hub {}", self.hub));
        match tokio::time::timeout(TIMEOUT, self.client.call(request)).await {
            Ok(Ok(Attributes(map))) => Ok(map),
            Ok(Err(e)) => Err(format!("reading the {what} from $management failed: {e}")),
            Err(_) => Err(format!("$management did not answer about the {what} within {TIMEOUT:?}")),
        }
    }

    /// The hub's partition ids.
    async fn partitions(&mut self) -> Result<Vec<String>, String> {
        let hub = self.read("com.microsoft:eventhub", None).await?;
        let ids = match hub.get("partition_ids") {
            Some(Value::Array(ids)) => ids.0.iter().filter_map(text).collect(),
            Some(Value::List(ids)) => ids.iter().filter_map(text).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        if ids.is_empty() {
            return Err(format!("$management named no partitions of {}", self.hub));
        }
        Ok(ids)
    }
}

/// Why the link failed, from a receiver's error.
fn lost(partition: &str, e: RecvError) -> String {
    let text = e.to_string();
    if text.contains("stolen") || text.contains("epoch") {
        format!("partition {partition} was taken by a receiver with a higher owner level: {text}")
    } else {
        format!("receiving from partition {partition} failed: {text}")
    }
}

fn reason(outcome: Outcome) -> String {
    match outcome {
        Outcome::Retry { reason, .. } | Outcome::Reject { reason, .. } => reason,
        Outcome::Delivered => "connected".into(),
    }
}

/// What a partition's reader hands the receiver.
type Received = (usize, Result<Message<Body<Value>>, String>);

/// Reads one partition's link until it fails or the receiver stops: each
/// event is settled as it arrives (the checkpoint stored with it is what
/// acknowledges it), and waits while the receiver has `IN_FLIGHT` unstored.
async fn read(index: usize, partition: String, mut receiver: Receiver, out: mpsc::Sender<Received>) {
    loop {
        let got = match receiver.recv::<Body<Value>>().await {
            Ok(delivery) => {
                let _ = receiver.accept(&delivery).await;
                Ok(delivery.into_message())
            }
            Err(e) => Err(lost(&partition, e)),
        };
        let failed = got.is_err();
        if out.send((index, got)).await.is_err() || failed {
            return;
        }
    }
}

#[async_trait]
impl Ingress for EventHubsIngress {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        let container = format!("switchyard-{}", self.integration);
        let mut opened = tokio::select! {
            opened = link::open(&self.config.namespace, &self.policy, container) => opened.map_err(reason)?,
            _ = sink.stopping() => return Ok(()),
        };
        let client = MgmtClient::attach(&mut opened.session, format!("switchyard-{}-management", self.integration))
            .await
            .map_err(|e| format!("attaching to $management failed: {e}"))?;
        let mut mgmt = Management { client, hub: &self.config.namespace.hub, token: opened.token.as_deref() };
        let partitions = mgmt.partitions().await?;
        let mut starts = Vec::new();
        for p in &partitions {
            starts.push(self.start_of(sink, &mut mgmt, p).await?);
        }
        let _ = mgmt.client.close().await;
        let (tx, mut rx) = mpsc::channel::<Received>(IN_FLIGHT);
        let mut readers = tokio::task::JoinSet::new();
        for (i, (p, from)) in partitions.iter().zip(&starts).enumerate() {
            let receiver = self.attach(&mut opened, p, from).await?;
            readers.spawn(read(i, p.clone(), receiver, tx.clone()));
        }
        drop(tx);
        sink.link(LinkEvent::Connected);
        // Checkpoints past events the partition-key filter passed over, by
        // partition: kept once nothing of that partition is being stored.
        let mut skipped: HashMap<usize, Checkpoint> = HashMap::new();
        let mut tick = tokio::time::interval(SKIPPED_EVERY);
        let mut pending = Handover::new(sink);
        let result = loop {
            tokio::select! {
                _ = sink.stopping() => break Ok(()),
                Some((_, stored)) = pending.next(), if !pending.is_empty() => {
                    if let Err(e) = stored {
                        break Err(e);
                    }
                }
                got = rx.recv(), if pending.len() < IN_FLIGHT => match got {
                    None => break Err("every partition's link ended".into()),
                    Some((_, Err(e))) => break Err(e),
                    Some((i, Ok(event))) => {
                        let (message, checkpoint, key) = self.message(&partitions[i], &event);
                        if self.wanted(key.as_deref()) {
                            skipped.remove(&i);
                            pending.push(i, message);
                        } else {
                            skipped.insert(i, checkpoint);
                        }
                    }
                },
                _ = tick.tick(), if !skipped.is_empty() && pending.is_empty() => {
                    for (i, checkpoint) in std::mem::take(&mut skipped) {
                        let value = serde_json::to_string(&checkpoint).expect("a checkpoint serializes");
                        if let Err(e) = sink.save_progress(&self.progress_name(&partitions[i]), &value).await {
                            tracing::warn!(error = %e, "keeping a partition's checkpoint failed");
                        }
                    }
                }
            }
        };
        readers.abort_all();
        // What is being stored finishes; what is not stored is read again from the checkpoint.
        while pending.next().await.is_some() {}
        if result.is_ok() {
            opened.close().await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_the_selectors_event_hubs_takes() {
        let after = Position::After(Checkpoint { offset: "4096".into(), sequence: 12 });
        assert_eq!(after.selector(), "amqp.annotation.x-opt-offset > '4096'");
        assert_eq!(Position::Start(Start::Earliest).selector(), "amqp.annotation.x-opt-offset > '-1'");
        assert_eq!(Position::Start(Start::Latest).selector(), "amqp.annotation.x-opt-offset > '@latest'");
        assert_eq!(
            Position::Start(Start::EnqueuedAfter(1_796_000_000_000)).selector(),
            "amqp.annotation.x-opt-enqueued-time > '1796000000000'"
        );
    }
}
