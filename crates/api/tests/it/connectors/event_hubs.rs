//! AZURE_EVENT_HUBS over AMQP 1.0, with development-emulator connection
//! strings (plain AMQP, SASL PLAIN). EGRESS against RabbitMQ's AMQP 1.0
//! plugin (scripts/services enables it). INGRESS against the namespace of
//! scripts/peers/event_hubs.py (partitions, selector filters, owner levels,
//! $management, $cbs), itself checked against Microsoft's azure-eventhub
//! client. The Azure path's SAS token is checked against the documented
//! algorithm in `event_hubs/sas.rs`, and the peer verifies the tokens the
//! official client puts on $cbs; no Azure namespace is reachable here.
use std::time::Duration;

use async_trait::async_trait;
use fe2o3_amqp::types::messaging::{Body, Message};
use fe2o3_amqp::types::primitives::{SimpleValue, Value as Amqp};
use fe2o3_amqp::{Connection, Receiver, Session};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{conformance, free_port, Got, Peer};
use crate::Backend;

struct Hub {
    queue: String,
    receiver: Mutex<Receiver>,
    _session: Mutex<fe2o3_amqp::session::SessionHandle<()>>,
    _connection: Mutex<fe2o3_amqp::connection::ConnectionHandle<()>>,
}

fn connection_string(port: u16, user: &str, password: &str, hub: &str) -> String {
    format!(
        "Endpoint=sb://127.0.0.1:{port}/;SharedAccessKeyName={user};SharedAccessKey={password};EntityPath={hub};\
         UseDevelopmentEmulator=true"
    )
}

impl Hub {
    async fn start() -> Hub {
        let queue = format!("sy-eh-{}", free_port());
        crate::need("RabbitMQ (with its AMQP 1.0 plugin)", 5672).await;
        let mut connection = Connection::open("switchyard-test", "amqp://guest:guest@127.0.0.1:5672")
            .await
            .expect("RabbitMQ with rabbitmq_amqp1_0 (scripts/services enables it)");
        let mut session = Session::begin(&mut connection).await.unwrap();
        let receiver = Receiver::attach(&mut session, "test-receiver", format!("/queue/{queue}")).await.unwrap();
        Hub {
            queue,
            receiver: Mutex::new(receiver),
            _session: Mutex::new(session),
            _connection: Mutex::new(connection),
        }
    }
}

#[async_trait]
impl Peer for Hub {
    fn type_key(&self) -> &'static str {
        "AZURE_EVENT_HUBS"
    }
    fn properties(&self) -> Value {
        json!({"connectionString": connection_string(5672, "guest", "guest", &format!("/queue/{}", self.queue)),
               "partitionKeyTemplate": "{{ record.deviceId }}"})
    }
    fn unreachable(&self) -> Value {
        json!({"connectionString": connection_string(free_port(), "guest", "guest", "/queue/x")})
    }
    fn refused(&self) -> (Value, &'static str) {
        (
            json!({"connectionString": connection_string(5672, "guest", "not-the-password", "/queue/x")}),
            "refused the shared access key `guest`",
        )
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        let mut receiver = self.receiver.lock().await;
        let mut got = Vec::new();
        while got.len() < n {
            let delivery = tokio::time::timeout(Duration::from_secs(10), receiver.recv::<Body<Amqp>>())
                .await
                .unwrap_or_else(|_| panic!("the hub got {} messages, expected {n}", got.len()))
                .unwrap();
            receiver.accept(&delivery).await.unwrap();
            let message: &Message<Body<Amqp>> = delivery.message();
            let data = match &message.body {
                Body::Data(batch) => batch.iter().flat_map(|d| d.0.to_vec()).collect::<Vec<u8>>(),
                other => panic!("a data section: {other:?}"),
            };
            let body: Value = serde_json::from_slice(&data).unwrap();
            let props = message.application_properties.as_ref().expect("application properties");
            let Some(SimpleValue::String(id)) = props.get("switchyard-delivery-id") else { panic!("{props:?}") };
            let annotations = message.message_annotations.as_ref().expect("annotations");
            let key =
                annotations.iter().find(|(k, _)| format!("{k:?}").contains("x-opt-partition-key")).map(|(_, v)| v);
            assert_eq!(key, Some(&Amqp::String(body["device_id"].as_str().unwrap().to_owned())), "{annotations:?}");
            got.push(Got { body, delivery_id: id.clone() });
        }
        got
    }
}

async fn event_hubs_passes_the_connector_checks(backend: Backend) {
    conformance(backend, &Hub::start().await).await;
}

/// The test namespace of scripts/peers/event_hubs.py: one hub, `readings`,
/// of two partitions, that keeps its events in a folder across restarts.
/// Events name their device by their partition key; the test picks the
/// partition (`sensor-7` on 1, `sensor-8` on 0), so both are read.
pub(crate) struct Namespace {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<super::PeerProcess>,
}

pub(crate) const HUB: &str = "readings";
const KEY_NAME: &str = "listen";
const KEY: &str = "bmFtZXNwYWNlLWtleQ==";

impl Namespace {
    pub(crate) async fn start() -> Namespace {
        let mut ns = Namespace { port: free_port(), dir: tempfile::tempdir().unwrap(), process: None };
        ns.up().await;
        ns
    }

    async fn up(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/peers/event_hubs.py");
        let child = std::process::Command::new(super::venv_bin("python"))
            .args([script, "--port", &self.port.to_string(), "--dir", self.dir.path().to_str().unwrap()])
            .args(["--hub", HUB, "--key-name", KEY_NAME, "--key", KEY, "--group", "audit"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the python of scripts/test-peers");
        self.process = Some(super::PeerProcess::new(child));
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the Event Hubs peer did not listen on {}", self.port);
    }

    async fn down(&mut self) {
        if let Some(p) = self.process.take() {
            p.terminate().await;
        }
    }

    pub(crate) fn connection_string(&self, key: &str) -> String {
        connection_string(self.port, KEY_NAME, key, HUB)
    }

    /// The partition the test sends an external id's events to.
    pub(crate) fn partition(external: &str) -> &'static str {
        if external.ends_with(|c: char| c.is_ascii_digit() && (c as u8) % 2 == 1) {
            "1"
        } else {
            "0"
        }
    }

    /// Sends each payload to `partition` with `key` as its partition key;
    /// returns once the hub accepted them all.
    pub(crate) async fn send_to(&self, partition: &str, key: &str, payloads: &[Vec<u8>]) {
        use fe2o3_amqp::types::messaging::{Data, MessageAnnotations, Outcome};
        use fe2o3_amqp::types::primitives::{Binary, Symbol};
        use fe2o3_amqp::{sasl_profile::SaslProfile, Sender};
        let mut connection = Connection::builder()
            .container_id("test-publisher")
            .sasl_profile(SaslProfile::Plain { username: KEY_NAME.into(), password: KEY.into() })
            .open(format!("amqp://127.0.0.1:{}", self.port).as_str())
            .await
            .expect("the Event Hubs peer takes the publisher");
        let mut session = Session::begin(&mut connection).await.unwrap();
        let mut sender =
            Sender::attach(&mut session, "test-publisher", format!("{HUB}/Partitions/{partition}")).await.unwrap();
        for p in payloads {
            let annotations = MessageAnnotations::builder().insert(Symbol::from("x-opt-partition-key"), key).build();
            let message =
                Message::builder().message_annotations(annotations).data(Data(Binary::from(p.clone()))).build();
            let outcome = sender.send(message).await.unwrap();
            assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
        }
        let _ = sender.close().await;
        let _ = session.end().await;
        let _ = connection.close().await;
    }
}

#[async_trait]
impl crate::ingress::Source for Namespace {
    fn type_key(&self) -> &'static str {
        "AZURE_EVENT_HUBS"
    }
    fn properties(&self) -> Value {
        json!({"connectionString": self.connection_string(KEY), "format": "json",
               "externalIdFrom": "attribute:partitionKey"})
    }
    fn source_ref(&self, external: &str) -> String {
        format!("{HUB}/{}", Namespace::partition(external))
    }
    async fn send(&self, external: &str, payloads: &[Vec<u8>]) {
        self.send_to(Namespace::partition(external), external, payloads).await
    }
    async fn stop(&mut self) {
        self.down().await
    }
    async fn start(&mut self) {
        self.up().await
    }
}

async fn event_hubs_ingress_passes_the_ingress_checks(backend: Backend) {
    crate::ingress::conformance(backend, &mut Namespace::start().await).await;
}

async fn an_event_hubs_burst_waits_for_the_rate_limit(backend: Backend) {
    crate::ingress::burst_conformance(backend, &Namespace::start().await).await;
}

on_both_stores!(
    event_hubs_passes_the_connector_checks,
    event_hubs_ingress_passes_the_ingress_checks,
    an_event_hubs_burst_waits_for_the_rate_limit,
    every_partition_is_read_and_resumed_after_its_checkpoint,
    an_enqueued_time_and_partition_keys_choose_the_events,
    a_higher_owner_level_takes_the_partitions
);

/// The peer is checked against Microsoft's own client (scripts/peers/event_hubs_client.py):
/// what the client sees is what the service documents.
#[tokio::test]
async fn the_peer_answers_microsofts_client_as_the_service_does() {
    let ns = Namespace::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/peers/event_hubs_client.py");
    let (good, wrong) = (ns.connection_string(KEY), ns.connection_string("d3Jvbmcta2V5"));
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(super::venv_bin("python")).args([script, &good, &wrong]).output()
    });
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the client finishes").unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    // $management: the hub and its partitions.
    assert_eq!(seen["hub"], json!({"name": HUB, "partitions": ["0", "1"]}));
    // A batch sent with a partition key lands in one partition, in order.
    let full = seen["keyed_partition"].as_str().unwrap();
    let other = if full == "0" { "1" } else { "0" };
    assert_eq!(seen["partitions"][full]["last_enqueued_sequence_number"], 2);
    assert_eq!(seen["partitions"][full]["is_empty"], false);
    assert_eq!(seen["partitions"][other]["is_empty"], true);
    let bodies = |k: &str| -> Vec<Value> {
        seen[k].as_array().unwrap().iter().map(|e| serde_json::from_str(e["body"].as_str().unwrap()).unwrap()).collect()
    };
    assert_eq!(bodies("earliest"), [json!({"n": 0}), json!({"n": 1}), json!({"n": 2})]);
    assert!(seen["earliest"].as_array().unwrap().iter().all(|e| e["key"] == "sensor-7"));
    let sequences: Vec<&Value> = seen["earliest"].as_array().unwrap().iter().map(|e| &e["sequence"]).collect();
    assert_eq!(sequences, [0, 1, 2]);
    // Positions: after an offset (exclusive), from a sequence number (inclusive), after a time, the latest.
    assert_eq!(bodies("after_first_offset"), [json!({"n": 1}), json!({"n": 2})]);
    assert_eq!(bodies("from_sequence_1_inclusive"), [json!({"n": 1}), json!({"n": 2})]);
    assert_eq!(seen["after_now"], json!([]));
    assert_eq!(bodies("latest"), [json!({"n": "late"})], "only what is sent once the receiver is there");
    // Owner levels: the higher takes the partition; the lower is told why.
    assert_eq!(seen["higher_owner"], 4);
    let stolen = seen["lower_owner_errors"].to_string();
    assert!(stolen.contains("amqp:link:stolen"), "{stolen}");
    // A key that is not the namespace's: the token put on $cbs is refused.
    let refused = seen["wrong_key"].as_str().unwrap();
    assert!(refused.starts_with("AuthenticationError") && refused.contains("401"), "{refused}");
}

/// Events `sensor-7` sends to `partition`, numbered from `from`.
fn numbered(from: i64, n: i64) -> Vec<Vec<u8>> {
    (from..from + n).map(|i| json!({"n": i}).to_string().into_bytes()).collect()
}

/// An ingress integration on `ns` with `extra` properties, `sensor-7` mapped
/// to a device before it is enabled (the hub holds events already: mapped
/// later, the first would be logged unmapped).
async fn hub_ingress(app: &crate::App, ns: &Namespace, extra: Value) -> (String, String) {
    let (_, device, device_path) = app.place_and_device("meter").await;
    let mut properties = crate::ingress::Source::properties(ns);
    properties["rateLimitPerSecond"] = json!(1000);
    properties.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let body = json!({"name": "hub", "type": "AZURE_EVENT_HUBS", "direction": "INGRESS", "enabled": false,
                      "properties": properties});
    let created = app.post("/v2/integrations", body).await;
    assert_eq!(created.status, reqwest::StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let mapping = json!({"integrationId": id, "externalId": "sensor-7", "resourcePath": device_path});
    assert_eq!(app.post("/v2/integrations/resource-mappings", mapping).await.status, reqwest::StatusCode::CREATED);
    let integration = format!("/v2/integrations/{id}");
    assert_eq!(app.put(&integration, json!({"enabled": true})).await.status, reqwest::StatusCode::OK);
    (integration, device)
}

/// Every partition is read, from the earliest event; once stored, a
/// reconnect resumes after each partition's checkpoint, reading nothing again.
async fn every_partition_is_read_and_resumed_after_its_checkpoint(backend: Backend) {
    use crate::ingress::{records, state, until};
    let ns = Namespace::start().await;
    ns.send_to("0", "sensor-7", &numbered(0, 3)).await;
    ns.send_to("1", "sensor-7", &numbered(3, 3)).await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (integration, device) = hub_ingress(&app, &ns, json!({"startPosition": "earliest"})).await;
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=100");
    let all = until(&app, &telemetry, "both partitions' events", |l| records(l).len() == 6).await;
    let mut seen: Vec<i64> = records(&all).iter().map(|r| r["record"]["payload"].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..6).collect::<Vec<_>>());
    let log = app.get(&format!("{integration}/messages?limit=10")).await.body;
    let mut ids: Vec<String> = records(&log).iter().map(|m| m["sourceId"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["0:0", "0:1", "0:2", "1:0", "1:1", "1:2"], "partition:sequence number");
    let attributes = log["data"][0]["attributes"].to_string();
    for name in ["partition", "offset", "sequenceNumber", "enqueuedTime", "partitionKey"] {
        assert!(attributes.contains(name), "{name} in {attributes}");
    }

    // Off and on again: the link opens anew, after each partition's checkpoint.
    app.put(&integration, json!({"enabled": false})).await;
    until(&app, &integration, "disabled", |i| state(i) == "disabled").await;
    ns.send_to("1", "sensor-7", &numbered(6, 1)).await;
    app.put(&integration, json!({"enabled": true})).await;
    until(&app, &telemetry, "the event sent meanwhile", |l| records(l).len() == 7).await;
    let counters = app.get(&integration).await.body["connection"]["counters"].clone();
    assert_eq!((counters["received"].as_i64(), counters["duplicates"].as_i64()), (Some(7), Some(0)), "{counters}");
}

/// Starting at an enqueued time takes only what came after it; the
/// partition-key filter passes over other keys' events.
async fn an_enqueued_time_and_partition_keys_choose_the_events(backend: Backend) {
    use crate::ingress::{records, until};
    let ns = Namespace::start().await;
    ns.send_to("0", "sensor-7", &numbered(0, 2)).await;
    let after = switchyard_core::now_ms();
    while switchyard_core::now_ms() <= after {
        tokio::task::yield_now().await;
    }
    ns.send_to("0", "sensor-7", &numbered(2, 2)).await;
    ns.send_to("1", "other-key", &numbered(4, 2)).await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let start = switchyard_connectors::shared::rfc3339(after);
    let extra = json!({"startPosition": "enqueuedTime", "startEnqueuedTime": start, "partitionKeys": ["sensor-7"]});
    let (integration, device) = hub_ingress(&app, &ns, extra).await;
    ns.send_to("1", "sensor-7", &numbered(9, 1)).await;
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=100");
    let stored = until(&app, &telemetry, "three events", |l| records(l).len() == 3).await;
    let mut seen: Vec<i64> = records(&stored).iter().map(|r| r["record"]["payload"].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, [2, 3, 9], "0 and 1 came before the time; 4 and 5 have another partition key");
    let log = app.get(&format!("{integration}/messages")).await.body;
    let mut ids: Vec<String> = records(&log).iter().map(|m| m["sourceId"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["0:2", "0:3", "1:2"], "what was passed over is not logged");
}

/// A receiver with a higher owner level takes the partitions; the one it
/// took them from says so, and is refused while the other holds them.
async fn a_higher_owner_level_takes_the_partitions(backend: Backend) {
    use crate::ingress::{state, until};
    let ns = Namespace::start().await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (low, _) = hub_ingress(&app, &ns, json!({"ownerLevel": 1})).await;
    until(&app, &low, "connected", |i| state(i) == "connected").await;
    let (high, _) = hub_ingress(&app, &ns, json!({"ownerLevel": 2})).await;
    until(&app, &high, "connected", |i| state(i) == "connected").await;
    let taken = until(&app, &low, "reconnecting", |i| state(i) == "reconnecting").await;
    let why = taken["connection"]["lastError"].as_str().unwrap_or_default();
    assert!(why.contains("owner level"), "{why}");
    let view = app.get(&high).await.body;
    assert_eq!(state(&view), "connected", "the higher keeps them: {view:#}");
}
