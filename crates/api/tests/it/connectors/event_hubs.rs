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

on_both_stores!(event_hubs_passes_the_connector_checks);
