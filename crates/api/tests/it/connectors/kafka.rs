//! KAFKA against librdkafka's mock cluster: in-process brokers that speak
//! the real Kafka protocol on loopback sockets (no Kafka broker installs
//! here). A topic the cluster answers with TOPIC_AUTHORIZATION_FAILED is the
//! permanent failure.
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use super::{conformance, free_port, Got, Peer};
use crate::Backend;

struct Kafka {
    servers: String,
    consumer: StreamConsumer,
}

/// The mock cluster (kept by the test: it is neither Send nor Sync) and a consumer of `readings`.
fn start() -> (MockCluster<'static, DefaultProducerContext>, Kafka) {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("readings", 3, 3).unwrap();
    cluster.create_topic("forbidden", 1, 1).unwrap();
    cluster.topic_error("forbidden", RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED).unwrap();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "switchyard-test")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["readings"]).unwrap();
    let servers = cluster.bootstrap_servers();
    (cluster, Kafka { servers, consumer })
}

#[async_trait]
impl Peer for Kafka {
    fn type_key(&self) -> &'static str {
        "KAFKA"
    }
    fn properties(&self) -> Value {
        let servers: Vec<&str> = self.servers.split(',').collect();
        json!({"bootstrapServers": servers, "topic": "readings", "keyTemplate": "{{ record.deviceId }}"})
    }
    fn unreachable(&self) -> Value {
        json!({"bootstrapServers": [format!("127.0.0.1:{}", free_port())], "topic": "readings", "timeoutSeconds": 2})
    }
    fn refused(&self) -> (Value, &'static str) {
        let mut p = self.properties();
        p["topic"] = json!("forbidden");
        (p, "Topic authorization failed")
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        let mut got = Vec::new();
        while got.len() < n {
            let m = tokio::time::timeout(Duration::from_secs(10), self.consumer.recv())
                .await
                .unwrap_or_else(|_| panic!("the topic held {} messages, expected {n}", got.len()))
                .unwrap();
            let body: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert_eq!(m.key(), Some(body["device_id"].as_str().unwrap().as_bytes()), "keyed by device");
            let headers = m.headers().expect("headers");
            let id = headers
                .iter()
                .find(|h| h.key == "switchyard-delivery-id")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
                .expect("the delivery id header");
            got.push(Got { body, delivery_id: id });
        }
        got
    }
}

async fn kafka_passes_the_connector_checks(backend: Backend) {
    let (cluster, kafka) = start();
    conformance(backend, &kafka).await;
    drop(cluster);
}

on_both_stores!(kafka_passes_the_connector_checks);
