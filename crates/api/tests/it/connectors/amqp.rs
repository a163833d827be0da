//! AMQP against the RabbitMQ on this machine: each test declares its own
//! exchange and a queue bound to everything on it.
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};

use super::{conformance, Got, Peer};
use crate::Backend;

const URL: &str = "amqp://127.0.0.1:5672/%2f";

struct Rabbit {
    exchange: String,
    queue: String,
    channel: Channel,
    _conn: Connection,
}

impl Rabbit {
    async fn start() -> Rabbit {
        crate::need("RabbitMQ", 5672).await;
        let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (scripts/services starts it)");
        let channel = conn.create_channel().await.unwrap();
        let exchange = format!("sy-test-{}", ulid());
        let options = ExchangeDeclareOptions { auto_delete: true, ..Default::default() };
        channel
            .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, options, FieldTable::default())
            .await
            .unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = queue.name().to_string();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Rabbit { exchange, queue, channel, _conn: conn }
    }
}

fn ulid() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

#[async_trait]
impl Peer for Rabbit {
    fn type_key(&self) -> &'static str {
        "AMQP"
    }
    fn properties(&self) -> Value {
        json!({"url": URL, "username": "guest", "password": "guest", "exchange": self.exchange,
               "routingKeyTemplate": "sy.{{ record.kind }}.{{ record.property }}"})
    }
    fn unreachable(&self) -> Value {
        json!({"url": "amqp://127.0.0.1:1/%2f", "exchange": self.exchange, "routingKeyTemplate": "x"})
    }
    fn refused(&self) -> (Value, &'static str) {
        let props = json!({"url": URL, "username": "guest", "password": "guest",
                           "exchange": "sy-no-such-exchange", "routingKeyTemplate": "x"});
        (props, "no exchange 'sy-no-such-exchange'")
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        let mut got = Vec::new();
        for _ in 0..1000 {
            let message = self.channel.basic_get(self.queue.as_str().into(), BasicGetOptions::default()).await.unwrap();
            let Some(message) = message else {
                if got.len() >= n {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            message.delivery.acker.ack(BasicAckOptions::default()).await.unwrap();
            let props = &message.delivery.properties;
            let header = props.headers().as_ref().and_then(|h| h.inner().get("switchyard-delivery-id").cloned());
            let Some(AMQPValue::LongString(id)) = header else { panic!("no delivery id header: {props:?}") };
            assert_eq!(props.message_id().as_ref().map(|m| m.to_string()), Some(id.to_string()));
            assert_eq!(props.delivery_mode(), &Some(2), "persistent by default");
            let body: Value = serde_json::from_slice(&message.delivery.data).unwrap();
            let key = message.delivery.routing_key.to_string();
            assert_eq!(key, format!("sy.{}.{}", body["kind"].as_str().unwrap(), body["object"].as_str().unwrap()));
            got.push(Got { body, delivery_id: id.to_string() });
            if got.len() >= n {
                return got;
            }
        }
        panic!("RabbitMQ got {} messages, expected {n}", got.len());
    }
}

async fn amqp_passes_the_connector_checks(backend: Backend) {
    conformance(backend, &Rabbit::start().await).await;
}

/// A wrong password is the broker refusing the login: dead at once, not retried.
async fn a_refused_login_is_permanent(backend: Backend) {
    let rabbit = Rabbit::start().await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let mut props = rabbit.properties();
    props["password"] = json!("not-the-password");
    let id = super::integration(&app, &rabbit, "bad login", props, json!({"kinds": ["value"]})).await;
    super::ingest(&app, vec![crate::receiver::value(&device, "power", json!(1))]).await;
    let dead = crate::receiver::wait_status(&app, &id, "dead").await;
    assert_eq!(dead["attemptCount"], 1, "{dead}");
    let error = dead["lastError"].as_str().unwrap();
    assert!(error.contains("ACCESS_REFUSED") || error.contains("refused"), "{error}");
    assert!(!dead.to_string().contains("not-the-password"), "the password stays out of the log");
}

on_both_stores!(amqp_passes_the_connector_checks, a_refused_login_is_permanent);
