//! Accepted means durable: the server is killed with SIGKILL in the middle
//! of a load, restarted, and every record it accepted is delivered; a
//! record delivered twice carries the same webhook-id both times.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{call, switchyard, Server};

type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A receiver that takes 25 ms per request and records (record id, webhook-id).
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let sink = sink.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let record: Value = serde_json::from_slice(&body).unwrap();
            let id = record["id"].as_str().unwrap_or_default().to_owned();
            let hook = headers["webhook-id"].to_str().unwrap().to_owned();
            sink.lock().unwrap().push((id, hook));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The admin key, and a Place with a device in it (their JSON).
pub(crate) async fn place_and_device(server: &Server, dir: &std::path::Path) -> (String, Value, Value) {
    let key = std::fs::read_to_string(dir.join("data/admin.key")).unwrap().trim().to_owned();
    let base = &server.base;
    let (_, place) = call(Method::POST, &format!("{base}/v2/places"), &key, Some(json!({"name": "P"}))).await;
    let body = json!({"name": "D", "placeId": place["id"], "deviceType": "meter"});
    let (_, device) = call(Method::POST, &format!("{base}/v2/devices"), &key, Some(body)).await;
    (key, place, device)
}

fn start(dir: &std::path::Path) -> Server {
    Server::start(
        switchyard(dir).args(["serve", "--listen", "127.0.0.1:0"]).env("SWITCHYARD_EGRESS_ALLOW", "127.0.0.1/32"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_accepted_record() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = receiver().await;
    let mut server = start(dir.path());
    let (key, _, device) = place_and_device(&server, dir.path()).await;
    let base = server.base.clone();
    let (_, hook) = call(
        Method::POST,
        &format!("{base}/v2/integrations"),
        &key,
        Some(json!({"name": "sink", "type": "WEBHOOK", "properties": {"url": url}})),
    )
    .await;
    let (status, _) = call(
        Method::POST,
        &format!("{base}/v2/integrations/{}/triggers", hook["id"].as_str().unwrap()),
        &key,
        Some(json!({"kinds": ["value"]})),
    )
    .await;
    assert_eq!(status, 201);

    // Load: batches of 20 records with ids, until the server is killed.
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let loader = {
        let (accepted, key, base, device) = (accepted.clone(), key.clone(), base.clone(), device["id"].clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for batch in 0.. {
                let ids: Vec<String> = (0..20).map(|i| format!("r-{batch}-{i}")).collect();
                let records: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"kind": "value", "deviceId": device, "property": "p", "timestamp": 1, "payload": 1, "id": id}))
                    .collect();
                let sent = client
                    .post(format!("{base}/v2/telemetry"))
                    .header("x-api-key", &key)
                    .json(&json!({"records": records}))
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status() == 202 => accepted.lock().unwrap().extend(ids),
                    _ => break,
                }
            }
        })
    };
    // Kill once plenty is accepted and some is delivered, with work in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while (accepted.lock().unwrap().len() < 1000 || seen.lock().unwrap().len() < 100) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    loader.await.unwrap();
    let accepted = accepted.lock().unwrap().clone();
    let delivered_before = seen.lock().unwrap().len();
    assert!(accepted.len() >= 1000, "the load ran ({} accepted)", accepted.len());
    assert!(
        delivered_before < accepted.len(),
        "the kill left work undelivered ({delivered_before} of {})",
        accepted.len()
    );

    let restarted = start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::HashSet<String> = seen.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
        let missing = accepted.iter().filter(|id| !got.contains(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{missing} accepted records were never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut hooks: HashMap<String, Vec<String>> = HashMap::new();
    for (id, hook) in seen.lock().unwrap().iter() {
        hooks.entry(id.clone()).or_default().push(hook.clone());
    }
    for (id, ids) in &hooks {
        assert!(ids.iter().all(|h| h == &ids[0]), "{id} was delivered under different webhook-ids: {ids:?}");
    }
    let duplicates = hooks.values().filter(|v| v.len() > 1).count();
    println!(
        "accepted {}, delivered before the kill {delivered_before}, redelivered after restart {duplicates}",
        accepted.len()
    );
    drop(restarted);
}

/// A Mosquitto on a free port, keeping sessions in memory while the server is down.
pub(crate) struct Broker {
    pub(crate) port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub(crate) async fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = dir.path().join("mosquitto.conf");
        let text = format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n");
        std::fs::write(&conf, text).unwrap();
        let child = std::process::Command::new("mosquitto")
            .args(["-c", conf.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto from Debian's mosquitto package (scripts/services)");
        // Dropped (killed and waited for) if it never listens.
        let broker = Broker { port, child, _dir: dir };
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return broker;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("mosquitto did not listen on {port}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MQTT publisher at QoS 1 to `meters/m1` (`{"id": "m-N", "seq": N}`),
/// pausing `pause` after every `every` messages, until finished.
pub(crate) struct Publisher {
    acked: Arc<std::sync::atomic::AtomicI64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<i64>,
}

impl Publisher {
    pub(crate) fn start(port: u16, client_id: &str, every: i64, pause: Duration) -> Publisher {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let acked = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_inflight(50);
        let task = {
            let (acked, stop) = (acked.clone(), stop.clone());
            tokio::spawn(async move {
                let (client, mut events) = AsyncClient::new(options, 100);
                let pump = tokio::spawn(async move {
                    while let Ok(event) = events.poll().await {
                        if let Event::Incoming(Packet::PubAck(_)) = event {
                            acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
                let mut n = 0i64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let payload = serde_json::to_vec(&json!({"id": format!("m-{n}"), "seq": n})).unwrap();
                    client.publish("meters/m1", QoS::AtLeastOnce, false, payload).await.unwrap();
                    n += 1;
                    if n % every == 0 {
                        tokio::time::sleep(pause).await;
                    }
                }
                // The acknowledgements still in flight.
                tokio::time::sleep(Duration::from_millis(500)).await;
                pump.abort();
                n
            })
        };
        Publisher { acked, stop, task }
    }

    /// Stops publishing; returns (published, acknowledged by the broker).
    pub(crate) async fn finish(self) -> (i64, i64) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let published = self.task.await.unwrap();
        (published, self.acked.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Every record of the device, following the pages.
pub(crate) async fn stored_sequence(base: &str, key: &str, device: &str) -> Vec<i64> {
    let mut seq = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!("{base}/v2/telemetry?deviceId={device}&limit=200{cursor}");
        let (status, page) = call(Method::GET, &url, key, None).await;
        assert_eq!(status, 200, "{page}");
        seq.extend(page["data"].as_array().unwrap().iter().map(|r| r["record"]["payload"].as_i64().unwrap()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return seq,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_mqtt_flow_stores_every_message_once() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let (key, place, device) = place_and_device(&server, dir.path()).await;
    let base = server.base.clone();
    let device = device["id"].as_str().unwrap().to_owned();
    let properties = json!({"host": "127.0.0.1", "port": broker.port, "topics": ["meters/+"], "qos": "1",
        "externalIdFrom": "topic:1", "messageIdFrom": "pointer:/id", "rateLimitPerSecond": 5000});
    let (status, ingress) = call(
        Method::POST,
        &format!("{base}/v2/integrations"),
        &key,
        Some(json!({"name": "meters", "type": "MQTT", "direction": "INGRESS", "properties": properties})),
    )
    .await;
    assert_eq!(status, 201, "{ingress}");
    let id = ingress["id"].as_str().unwrap().to_owned();
    let path = format!("/places/{}/devices/{device}", place["id"].as_str().unwrap());
    let mapping = json!({"integrationId": id, "externalId": "m1", "resourcePath": path});
    let (status, _) =
        call(Method::POST, &format!("{base}/v2/integrations/resource-mappings"), &key, Some(mapping)).await;
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, view) = call(Method::GET, &format!("{base}/v2/integrations/{id}"), &key, None).await;
        if view["connection"]["state"] == "connected" {
            break;
        }
        assert!(Instant::now() < deadline, "never connected: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A publisher at QoS 1: a message counts as sent once the broker acknowledged it.
    let publisher = Publisher::start(broker.port, "crash-publisher", 50, Duration::from_millis(5));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stored_before = 0;
    while stored_before < 1000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stored_before = stored_sequence(&base, &key, &device).await.len();
    }
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = start(dir.path());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (published, sent) = publisher.finish().await;
    assert!(sent >= 1000 && sent <= published, "the publisher ran ({sent} acknowledged of {published})");
    let base = restarted.base.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let stored = stored_sequence(&base, &key, &device).await;
        if stored.len() as i64 >= sent || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut sorted = stored.clone();
    sorted.sort();
    let unique: std::collections::BTreeSet<i64> = sorted.iter().copied().collect();
    assert_eq!(sorted.len(), unique.len(), "a message was stored twice");
    let missing: Vec<i64> = (0..sent).filter(|n| !unique.contains(n)).collect();
    let (_, view) = call(Method::GET, &format!("{base}/v2/integrations/{id}"), &key, None).await;
    let (_, history) = call(Method::GET, &format!("{base}/v2/integrations/{id}/status-history"), &key, None).await;
    assert!(
        missing.is_empty(),
        "{} acknowledged messages were never stored: {:?}…\n{view}\n{history}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        restarted.logs()
    );
    println!(
        "published {published}, acknowledged {sent}, stored before the kill {stored_before}, stored {}",
        stored.len()
    );
}

/// A moto server (scripts/test-peers) on a free port; killed on drop.
struct Moto {
    url: String,
    child: std::process::Child,
}

impl Moto {
    async fn start() -> Moto {
        let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
        assert!(bin.exists(), "{} is missing: run scripts/test-peers", bin.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let moto = Moto { url: format!("http://127.0.0.1:{port}"), child };
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("moto did not listen on {port}");
    }
}

/// One SQS action on the moto at `url`, unsigned (moto does not check signatures).
async fn sqs(url: &str, action: &str, body: Value) -> Value {
    let auth =
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";
    let res = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("AmazonSQS.{action}"))
        .header("authorization", auth)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{action}: {}", res.text().await.unwrap());
    res.json().await.unwrap_or(Value::Null)
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an ingress integration and maps `external` to `device`; returns
/// its create response once it is connected.
async fn ingress(base: &str, key: &str, body: Value, external: &str, device_path: &str) -> Value {
    let (status, created) = call(Method::POST, &format!("{base}/v2/integrations"), key, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let mapping = json!({"integrationId": id, "externalId": external, "resourcePath": device_path});
    let (status, _) =
        call(Method::POST, &format!("{base}/v2/integrations/resource-mappings"), key, Some(mapping)).await;
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, view) = call(Method::GET, &format!("{base}/v2/integrations/{id}"), key, None).await;
        if view["connection"]["state"] == "connected" {
            return created;
        }
        assert!(Instant::now() < deadline, "never connected: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the device holds `n` records (30 s at most); returns its sequence numbers, sorted.
pub(crate) async fn settled(base: &str, key: &str, device: &str, n: usize) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut stored = stored_sequence(base, key, device).await;
        if stored.len() >= n || Instant::now() > deadline {
            stored.sort();
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Exactly `0..n`, each once.
pub(crate) fn each_once(stored: &[i64], n: i64, what: &str) {
    let unique: std::collections::BTreeSet<i64> = stored.iter().copied().collect();
    assert_eq!(stored.len(), unique.len(), "{what}: a message was stored twice");
    let missing: Vec<i64> = (0..n).filter(|s| !unique.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} sent messages were never stored: {:?}…",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(unique.iter().all(|s| (0..n).contains(s)), "{what}: stored what was never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_sqs_and_http_inbound_flow_stores_every_message_once() {
    let moto = Moto::start().await;
    let queue = sqs(&moto.url, "CreateQueue", json!({"QueueName": "meters", "Attributes": {"VisibilityTimeout": "5"}}))
        .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let (key, place, sqs_device) = place_and_device(&server, dir.path()).await;
    let base = server.base.clone();
    let place = place["id"].as_str().unwrap();
    let body = json!({"name": "D2", "placeId": place, "deviceType": "meter"});
    let (_, http_device) = call(Method::POST, &format!("{base}/v2/devices"), &key, Some(body)).await;
    let (sqs_device, http_device) = (sqs_device["id"].as_str().unwrap(), http_device["id"].as_str().unwrap());
    let receiving = json!({"name": "queue", "type": "AWS_SQS", "direction": "INGRESS", "properties": {
        "queueUrl": queue, "region": "us-east-1", "accessKeyId": "AKIATESTING", "secretAccessKey": "moto-secret",
        "endpointUrl": moto.url, "externalIdFrom": "attribute:device", "rateLimitPerSecond": 5000}});
    ingress(&base, &key, receiving, "q1", &format!("/places/{place}/devices/{sqs_device}")).await;
    let inbound = json!({"name": "gateway", "type": "HTTP_INBOUND", "direction": "INGRESS",
        "properties": {"externalIdFrom": "topic:0", "rateLimitPerSecond": 5000}});
    let created = ingress(&base, &key, inbound, "h1", &format!("/places/{place}/devices/{http_device}")).await;
    let token = created["generatedSecrets"]["token"].as_str().unwrap().to_owned();
    let inbound_id = created["id"].as_str().unwrap().to_owned();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // SQS: a message counts as sent once SQS took it.
    let producer = {
        let (stop, queue, url) = (stop.clone(), queue.clone(), moto.url.clone());
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let entries: Vec<Value> = (n..n + 10)
                    .map(|s| {
                        json!({"Id": format!("e{s}"), "MessageBody": json!({"seq": s}).to_string(),
                        "MessageAttributes": {"device": {"DataType": "String", "StringValue": "q1"}}})
                    })
                    .collect();
                sqs(&url, "SendMessageBatch", json!({"QueueUrl": queue, "Entries": entries})).await;
                n += 10;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    // HTTP inbound: a caller that retries each message (same Idempotency-Key)
    // until it is answered 202, following the server to its new address.
    let endpoint = Arc::new(Mutex::new(base.clone()));
    let caller = {
        let (stop, endpoint, token) = (stop.clone(), endpoint.clone(), token.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                loop {
                    let url = format!("{}/v2/inbound/{inbound_id}/h1", endpoint.lock().unwrap());
                    let sent = client
                        .post(url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .header("idempotency-key", format!("h-{n}"))
                        .body(json!({"seq": n}).to_string())
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status() == 202) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                n += 1;
            }
            n
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (a, b) = (stored_sequence(&base, &key, sqs_device).await, stored_sequence(&base, &key, http_device).await);
        if (a.len() >= 300 && b.len() >= 100) || Instant::now() > deadline {
            break;
        }
    }
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = start(dir.path());
    *endpoint.lock().unwrap() = restarted.base.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (queued, posted) = (producer.await.unwrap(), caller.await.unwrap());
    assert!(queued >= 300 && posted >= 100, "the sources ran ({queued} queued, {posted} posted)");
    let base = restarted.base.clone();
    let from_sqs = settled(&base, &key, sqs_device, queued as usize).await;
    each_once(&from_sqs, queued, "SQS");
    let from_http = settled(&base, &key, http_device, posted as usize).await;
    each_once(&from_http, posted, "HTTP inbound");
    let held = sqs(
        &moto.url,
        "GetQueueAttributes",
        json!({"QueueUrl": queue, "AttributeNames": ["ApproximateNumberOfMessages"]}),
    )
    .await;
    println!(
        "queued {queued}, posted {posted}; the queue still shows {}",
        held["Attributes"]["ApproximateNumberOfMessages"]
    );
}
