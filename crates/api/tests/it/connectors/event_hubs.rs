//! AZURE_EVENT_HUBS over AMQP 1.0 against RabbitMQ's AMQP 1.0 plugin
//! (scripts/services enables it), with a development-emulator connection
//! string (plain AMQP, SASL PLAIN). The Azure path's SAS token is checked
//! against the documented algorithm in `event_hubs/sas.rs`; no Azure
//! namespace is reachable here to run the $cbs exchange for real.
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
    an_event_hubs_burst_waits_for_the_rate_limit
);
