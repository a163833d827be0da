//! NATS against the nats-server (with JetStream) on this machine; the
//! refused-login case runs a nats-server of its own with a password.
use std::time::Duration;

use async_nats::jetstream;
use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{conformance, free_port, ingest, integration, start_peer_on_ports, Got, Peer};
use crate::receiver::{value, wait_status};
use crate::Backend;

const SERVER: &str = "nats://127.0.0.1:4222";

struct Nats {
    prefix: String,
    jet_stream: bool,
    messages: Mutex<async_nats::Subscriber>,
    client: async_nats::Client,
}

impl Nats {
    /// Subscribes to everything under a fresh prefix; with `jet_stream`, a
    /// memory stream captures it too.
    async fn start(jet_stream: bool) -> Nats {
        crate::need("NATS with JetStream", 4222).await;
        let client = async_nats::connect(SERVER).await.expect("nats-server on 127.0.0.1:4222 (scripts/services)");
        let id =
            format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let prefix = format!("sytest.{id}");
        if jet_stream {
            jetstream::new(client.clone())
                .create_stream(jetstream::stream::Config {
                    name: format!("SYTEST_{id}"),
                    subjects: vec![format!("{prefix}.>")],
                    storage: jetstream::stream::StorageType::Memory,
                    max_age: Duration::from_secs(600),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let messages = client.subscribe(format!("{prefix}.>")).await.unwrap();
        client.flush().await.unwrap();
        Nats { prefix, jet_stream, messages: Mutex::new(messages), client }
    }

    async fn stored(&self) -> u64 {
        let name = format!("SYTEST_{}", self.prefix.trim_start_matches("sytest."));
        let stream = jetstream::new(self.client.clone()).get_stream(name).await.unwrap();
        stream.get_info().await.unwrap().state.messages
    }

    async fn stop(self) {
        if self.jet_stream {
            let name = format!("SYTEST_{}", self.prefix.trim_start_matches("sytest."));
            jetstream::new(self.client.clone()).delete_stream(name).await.unwrap();
        }
    }
}

#[async_trait]
impl Peer for Nats {
    fn type_key(&self) -> &'static str {
        "NATS"
    }
    fn properties(&self) -> Value {
        json!({"servers": [SERVER], "jetStream": self.jet_stream,
               "subjectTemplate": format!("{}.{{{{ record.kind }}}}.{{{{ record.property }}}}", self.prefix)})
    }
    fn unreachable(&self) -> Value {
        json!({"servers": [format!("nats://127.0.0.1:{}", free_port())], "subjectTemplate": format!("{}.x", self.prefix)})
    }
    fn refused(&self) -> (Value, &'static str) {
        // JetStream on, but no stream captures the subject.
        let props = json!({"servers": [SERVER], "jetStream": true, "subjectTemplate": "sytest-nostream.x"});
        (props, "no JetStream stream captures subject `sytest-nostream.x`")
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        let mut messages = self.messages.lock().await;
        let mut got = Vec::new();
        while got.len() < n {
            let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .unwrap_or_else(|_| panic!("NATS got {} messages, expected {n}", got.len()))
                .unwrap();
            let headers = m.headers.clone().expect("headers");
            let id = headers.get("Switchyard-Delivery-Id").expect("delivery id header").to_string();
            if self.jet_stream {
                assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.to_string()), Some(id.clone()), "JetStream dedup id");
            }
            let body: Value = serde_json::from_slice(&m.payload).unwrap();
            let expected =
                format!("{}.{}.{}", self.prefix, body["kind"].as_str().unwrap(), body["object"].as_str().unwrap());
            assert_eq!(m.subject.as_str(), expected);
            got.push(Got { body, delivery_id: id });
        }
        got
    }
}

async fn jetstream_passes_the_connector_checks(backend: Backend) {
    let nats = Nats::start(true).await;
    conformance(backend, &nats).await;
    assert_eq!(nats.stored().await, 3, "the stream holds every delivered message (power, ping, adc_vbterm)");
    nats.stop().await;
}

async fn core_nats_passes_the_connector_checks(backend: Backend) {
    let nats = Nats::start(false).await;
    conformance(backend, &nats).await;
    nats.stop().await;
}

/// A server that wants a password refuses a wrong one: dead at once.
async fn a_refused_login_is_permanent(backend: Backend) {
    let (_server, ports) = start_peer_on_ports("/usr/sbin/nats-server", 1, |p| {
        ["-a", "127.0.0.1", "-p", &p[0].to_string(), "--user", "switchyard", "--pass", "right-password"]
            .map(str::to_owned)
            .to_vec()
    })
    .await;
    let port = ports[0];
    let nats = Nats::start(false).await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let props = json!({"servers": [format!("nats://127.0.0.1:{port}")], "subjectTemplate": "a.b",
                       "authMethod": "PASSWORD", "username": "switchyard", "password": "wrong-password"});
    let id = integration(&app, &nats, "bad login", props, json!({"kinds": ["value"]})).await;
    ingest(&app, vec![value(&device, "power", json!(1))]).await;
    let dead = wait_status(&app, &id, "dead").await;
    assert_eq!(dead["attemptCount"], 1, "{dead}");
    assert!(dead["lastError"].as_str().unwrap().contains("authorization"), "{dead}");
    assert!(!dead.to_string().contains("wrong-password"), "the password stays out of the log");
}

/// A server that wants a token takes the right one (and the token stays secret).
async fn a_token_authenticates(backend: Backend) {
    let (_server, ports) = start_peer_on_ports("/usr/sbin/nats-server", 1, |p| {
        ["-a", "127.0.0.1", "-p", &p[0].to_string(), "--auth", "s3cret-token"].map(str::to_owned).to_vec()
    })
    .await;
    let port = ports[0];
    let listener = async_nats::ConnectOptions::new()
        .token("s3cret-token".into())
        .connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut messages = listener.subscribe("tok.>").await.unwrap();
    listener.flush().await.unwrap();
    let nats = Nats::start(false).await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let props = json!({"servers": [format!("nats://127.0.0.1:{port}")], "subjectTemplate": "tok.{{ record.property }}",
                       "authMethod": "TOKEN", "token": "s3cret-token"});
    let id = integration(&app, &nats, "token", props, json!({"kinds": ["value"]})).await;
    ingest(&app, vec![value(&device, "power", json!(3))]).await;
    let m = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.unwrap().unwrap();
    assert_eq!(m.subject.as_str(), "tok.power");
    let delivered = wait_status(&app, &id, "succeeded").await;
    assert!(!delivered.to_string().contains("s3cret-token"));
    assert!(!app.get(&format!("/v2/integrations/{id}")).await.body.to_string().contains("s3cret-token"));
}

on_both_stores!(
    jetstream_passes_the_connector_checks,
    core_nats_passes_the_connector_checks,
    a_refused_login_is_permanent,
    a_token_authenticates
);
