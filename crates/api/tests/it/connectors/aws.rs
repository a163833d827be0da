//! AWS_SNS and AWS_SQS against a moto server (PyPI `moto[server]`, from
//! scripts/test-peers) this test starts. The test's own calls to moto are
//! plain HTTP (moto does not check signatures); the connector signs its own.
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{conformance, free_port, start_peer_on_ports, venv_bin, Got, Peer, PeerProcess};
use crate::Backend;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

pub(crate) struct Moto {
    url: String,
    port: u16,
    http: reqwest::Client,
    _process: PeerProcess,
}

impl Moto {
    async fn start() -> Moto {
        let (process, ports) = start_peer_on_ports(&venv_bin("moto_server"), 1, |p| {
            ["-H", "127.0.0.1", "-p", &p[0].to_string()].map(str::to_owned).to_vec()
        })
        .await;
        let port = ports[0];
        Moto { url: format!("http://127.0.0.1:{port}"), port, http: reqwest::Client::new(), _process: process }
    }

    fn auth(service: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0")
    }

    async fn sqs(&self, action: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/", self.url))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("AmazonSQS.{action}"))
            .header("authorization", Self::auth("sqs"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{action}: {}", res.text().await.unwrap());
        res.json().await.unwrap_or(Value::Null)
    }

    async fn sns(&self, form: &[(&str, &str)]) -> String {
        let res = self
            .http
            .post(format!("{}/", self.url))
            .header("authorization", Self::auth("sns"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "{form:?}: {text}");
        text
    }

    async fn queue(&self, name: &str) -> String {
        self.queue_with(name, json!({})).await
    }

    async fn queue_with(&self, name: &str, attributes: Value) -> String {
        let mut create = json!({"QueueName": name, "Attributes": attributes});
        if name.ends_with(".fifo") {
            create["Attributes"]["FifoQueue"] = json!("true");
        }
        self.sqs("CreateQueue", create).await["QueueUrl"].as_str().unwrap().to_owned()
    }

    /// Up to `n` messages from the queue, deleting what it takes (10 s at most).
    async fn take(&self, queue: &str, n: usize) -> Vec<Value> {
        let mut got = Vec::new();
        for _ in 0..200 {
            let res = self
                .sqs(
                    "ReceiveMessage",
                    json!({"QueueUrl": queue, "MaxNumberOfMessages": 10, "MessageAttributeNames": ["All"],
                           "MessageSystemAttributeNames": ["All"]}),
                )
                .await;
            for m in res["Messages"].as_array().cloned().unwrap_or_default() {
                self.sqs("DeleteMessage", json!({"QueueUrl": queue, "ReceiptHandle": m["ReceiptHandle"]})).await;
                got.push(m);
            }
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the queue held {} messages, expected {n}", got.len());
    }

    fn keys(&self) -> Value {
        json!({"region": REGION, "accessKeyId": "AKIATESTING", "secretAccessKey": "moto-secret-key", "endpointUrl": self.url})
    }
}

fn with(mut base: Value, extra: Value) -> Value {
    base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    base
}

struct Sqs {
    moto: Moto,
    queue: String,
}

#[async_trait]
impl Peer for Sqs {
    fn type_key(&self) -> &'static str {
        "AWS_SQS"
    }
    fn properties(&self) -> Value {
        with(self.moto.keys(), json!({"queueUrl": self.queue}))
    }
    fn unreachable(&self) -> Value {
        with(self.properties(), json!({"endpointUrl": format!("http://127.0.0.1:{}", free_port())}))
    }
    fn refused(&self) -> (Value, &'static str) {
        let missing = format!("{}/{ACCOUNT}/no-such-queue", self.moto.url);
        (with(self.properties(), json!({"queueUrl": missing})), "QueueDoesNotExist")
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        let fifo = self.queue.ends_with(".fifo");
        self.moto
            .take(&self.queue, n)
            .await
            .into_iter()
            .map(|m| {
                let id = m["MessageAttributes"]["switchyard-delivery-id"]["StringValue"].as_str().unwrap().to_owned();
                let body: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
                if fifo {
                    assert_eq!(m["Attributes"]["MessageDeduplicationId"], id.as_str(), "{m}");
                    assert_eq!(m["Attributes"]["MessageGroupId"], body["device_id"], "{m}");
                }
                Got { body, delivery_id: id }
            })
            .collect()
    }
}

struct Sns {
    moto: Moto,
    topic: String,
    /// A queue subscribed to the topic: what the topic publishes lands there.
    queue: String,
}

impl Sns {
    async fn start() -> Sns {
        let moto = Moto::start().await;
        let created = moto.sns(&[("Action", "CreateTopic"), ("Name", "readings")]).await;
        let topic = xml(&created, "TopicArn");
        let queue = moto.queue("from-sns").await;
        let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:from-sns");
        moto.sns(&[("Action", "Subscribe"), ("TopicArn", &topic), ("Protocol", "sqs"), ("Endpoint", &queue_arn)]).await;
        Sns { moto, topic, queue }
    }
}

fn xml(text: &str, tag: &str) -> String {
    let start = text.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
    let end = start + text[start..].find(&format!("</{tag}>")).unwrap();
    text[start..end].to_owned()
}

#[async_trait]
impl Peer for Sns {
    fn type_key(&self) -> &'static str {
        "AWS_SNS"
    }
    fn properties(&self) -> Value {
        with(self.moto.keys(), json!({"topicArn": self.topic}))
    }
    fn unreachable(&self) -> Value {
        with(self.properties(), json!({"endpointUrl": format!("http://127.0.0.1:{}", free_port())}))
    }
    fn refused(&self) -> (Value, &'static str) {
        let missing = format!("arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic");
        (with(self.properties(), json!({"topicArn": missing})), "NotFound")
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        self.moto
            .take(&self.queue, n)
            .await
            .into_iter()
            .map(|m| {
                // The SNS envelope the queue received: the message and its attributes.
                let envelope: Value = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
                assert_eq!(envelope["TopicArn"], self.topic.as_str());
                let id = envelope["MessageAttributes"]["switchyard-delivery-id"]["Value"].as_str().unwrap().to_owned();
                let body: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
                Got { body, delivery_id: id }
            })
            .collect()
    }
}

async fn sqs_passes_the_connector_checks(backend: Backend) {
    let moto = Moto::start().await;
    let queue = moto.queue("readings").await;
    conformance(backend, &Sqs { moto, queue }).await;
}

async fn a_fifo_queue_gets_group_and_deduplication_ids(backend: Backend) {
    let moto = Moto::start().await;
    let queue = moto.queue("readings.fifo").await;
    conformance(backend, &Sqs { moto, queue }).await;
}

async fn sns_passes_the_connector_checks(backend: Backend) {
    conformance(backend, &Sns::start().await).await;
}

/// An SQS queue an ingress integration receives from, through a proxy the
/// test can cut (moto keeps the queue meanwhile). Messages name their device
/// in the `device` message attribute.
pub(crate) struct SqsSource {
    moto: Moto,
    queue: String,
    proxy: super::Proxy,
}

impl SqsSource {
    /// A queue with a 5 s visibility timeout, so what a receive cut short
    /// took comes again soon.
    pub(crate) async fn start(name: &str) -> SqsSource {
        let moto = Moto::start().await;
        let queue = moto.queue_with(name, json!({"VisibilityTimeout": "5"})).await;
        let proxy = super::Proxy::start(([127, 0, 0, 1], moto.port).into()).await;
        SqsSource { moto, queue, proxy }
    }

    /// How many messages the queue still holds, visible or not (deleted ones are gone).
    pub(crate) async fn held(&self) -> u64 {
        let names = json!(["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]);
        let found = self.moto.sqs("GetQueueAttributes", json!({"QueueUrl": self.queue, "AttributeNames": names})).await;
        let count = |name: &str| found["Attributes"][name].as_str().unwrap().parse::<u64>().unwrap();
        count("ApproximateNumberOfMessages") + count("ApproximateNumberOfMessagesNotVisible")
    }
}

#[async_trait]
impl crate::ingress::Source for SqsSource {
    fn type_key(&self) -> &'static str {
        "AWS_SQS"
    }
    fn properties(&self) -> Value {
        with(
            self.moto.keys(),
            json!({"queueUrl": self.queue, "endpointUrl": self.proxy.url(), "format": "json",
                                      "externalIdFrom": "attribute:device"}),
        )
    }
    fn source_ref(&self, _external: &str) -> String {
        self.queue.rsplit('/').next().unwrap().to_owned()
    }
    async fn send(&self, external: &str, payloads: &[Vec<u8>]) {
        for (n, chunk) in payloads.chunks(10).enumerate() {
            let entries: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut entry = json!({"Id": format!("m{i}"), "MessageBody": String::from_utf8(p.clone()).unwrap(),
                        "MessageAttributes": {"device": {"DataType": "String", "StringValue": external}}});
                    if self.queue.ends_with(".fifo") {
                        entry["MessageGroupId"] = json!(external);
                        entry["MessageDeduplicationId"] = json!(format!("{}-{n}-{i}", switchyard_core::now_ms()));
                    }
                    entry
                })
                .collect();
            let sent = self.moto.sqs("SendMessageBatch", json!({"QueueUrl": self.queue, "Entries": entries})).await;
            assert!(sent["Failed"].as_array().is_none_or(|f| f.is_empty()), "{sent}");
        }
    }
    async fn stop(&mut self) {
        self.proxy.cut().await
    }
    async fn start(&mut self) {
        self.proxy.restore().await
    }
}

async fn sqs_ingress_passes_the_ingress_checks(backend: Backend) {
    let mut source = SqsSource::start("incoming").await;
    crate::ingress::conformance(backend, &mut source).await;
    assert_eq!(source.held().await, 0, "every message it stored is deleted from the queue");
}

async fn an_sqs_burst_waits_for_the_rate_limit(backend: Backend) {
    crate::ingress::burst_conformance(backend, &SqsSource::start("bursty").await).await;
}

async fn a_fifo_queue_is_received_in_order(backend: Backend) {
    let source = SqsSource::start("incoming.fifo").await;
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    let id = crate::ingress::ingress_on(&app, &source, &device_path, json!({})).await;
    let integration = format!("/v2/integrations/{id}");
    crate::ingress::until(&app, &integration, "connected", |i| crate::ingress::state(i) == "connected").await;
    let payloads: Vec<Vec<u8>> = (0..25).map(|n| json!({"n": n}).to_string().into_bytes()).collect();
    crate::ingress::Source::send(&source, "sensor-7", &payloads).await;
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=100");
    let all = crate::ingress::until(&app, &telemetry, "all 25", |l| crate::ingress::records(l).len() == 25).await;
    // Newest first: stored in the order the queue gave them.
    let seen: Vec<i64> =
        crate::ingress::records(&all).iter().rev().map(|r| r["record"]["payload"].as_i64().unwrap()).collect();
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
    let log = app.get(&format!("{integration}/messages?limit=1")).await.body;
    let message = &log["data"][0];
    assert!(message["sourceId"].as_str().is_some_and(|id| !id.is_empty()), "the MessageId deduplicates: {message}");
    let attributes = message["attributes"].to_string();
    assert!(attributes.contains("MessageGroupId") && attributes.contains("sensor-7"), "{attributes}");
    for _ in 0..200 {
        if source.held().await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stored messages are deleted from the queue");
}

on_both_stores!(
    sqs_passes_the_connector_checks,
    a_fifo_queue_gets_group_and_deduplication_ids,
    sns_passes_the_connector_checks,
    sqs_ingress_passes_the_ingress_checks,
    a_fifo_queue_is_received_in_order,
    an_sqs_burst_waits_for_the_rate_limit
);
