//! Every egress connector against its real peer, through the same
//! conformance checks: triggers → delivery → delivery log → test-send, a
//! retryable failure, a permanent failure and the objects list.
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::actions::finished;
use crate::receiver::{value, wait_status};
use crate::{App, Backend};

mod amqp;
mod aws;
mod email;
mod event_hubs;
mod gcp;
mod kafka;
mod mqtt;
mod nats;
mod twilio;
mod webhook;

/// Waits until nothing listens on `port` any more (a peer this test stopped).
pub async fn until_port_free(port: u16) {
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A free port on loopback (for a peer a test starts itself, or for nothing listening).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A peer process this test started; killed when dropped.
pub struct PeerProcess {
    child: std::process::Child,
}

impl PeerProcess {
    pub fn new(child: std::process::Child) -> Self {
        Self { child }
    }

    /// Stops it with SIGTERM, as an operator would, and waits until it has exited.
    pub async fn terminate(mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..500 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the peer did not stop on SIGTERM");
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` on `n` fresh ports (`args` makes its arguments from
/// them) and waits until it listens on all of them. A free port can be taken
/// by another test before the peer binds it, and then the peer exits: it is
/// started again on other ports, up to three times.
pub async fn start_peer_on_ports(
    program: &str,
    n: usize,
    mut args: impl FnMut(&[u16]) -> Vec<String>,
) -> (PeerProcess, Vec<u16>) {
    for _ in 0..3 {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let child = std::process::Command::new(program)
            .args(args(&ports))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} could not start ({e}); scripts/test-peers installs the test peers"));
        let mut process = PeerProcess { child };
        let mut waiting = ports.clone();
        for _ in 0..500 {
            if process.child.try_wait().ok().flatten().is_some() {
                break;
            }
            let mut still = Vec::new();
            for port in waiting {
                if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                    still.push(port);
                }
            }
            waiting = still;
            if waiting.is_empty() {
                return (process, ports);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("{program} did not listen on its ports in three tries");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
pub fn certificates(dir: &std::path::Path) {
    let run = |args: &str| {
        let out = std::process::Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .output()
            .expect("openssl (Debian's openssl package)");
        assert!(out.status.success(), "openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=switchyard-test-ca");
    for name in ["server", "client"] {
        run(&format!("req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr -subj /CN={name}"));
        run(&format!(
            "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out {name}.crt -days 2 -extfile san.ext"
        ));
    }
}

/// A program scripts/test-peers installed into the checkout's `.venv`.
pub fn venv_bin(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run scripts/test-peers", path.display());
    path.to_string_lossy().into_owned()
}

/// A message as the peer received it.
#[derive(Debug, Clone)]
pub struct Got {
    /// The message body, parsed.
    pub body: Value,
    /// The delivery id the message carried (attribute, header or user property).
    pub delivery_id: String,
}

/// A connector's far side, run for real on this machine.
#[async_trait]
pub trait Peer: Send + Sync {
    fn type_key(&self) -> &'static str;
    /// Properties that reach the peer.
    fn properties(&self) -> Value;
    /// Properties whose sends fail in a way worth retrying (nothing listening, say).
    fn unreachable(&self) -> Value;
    /// Properties the far side refuses for good, and a fragment of its reason.
    fn refused(&self) -> (Value, &'static str);
    /// Waits for the next `n` messages (10 s at most).
    async fn receive(&self, n: usize) -> Vec<Got>;
    /// Whether the type has an objects list.
    fn has_objects(&self) -> bool {
        true
    }
    /// Runs after each integration is created (notification types add recipients).
    async fn prepare(&self, _app: &App, _integration: &str) {}
    /// Whether the far side gets the published message (every type but the
    /// webhook, which sends the record itself).
    fn published_shape(&self) -> bool {
        true
    }
}

/// The fields of a received message, whichever shape it has:
/// (device, data, object, kind, sampled at).
fn fields(peer: &dyn Peer, body: &Value) -> (Value, Value, Value, Value, Value) {
    if peer.published_shape() {
        let b = body.clone();
        (b["device_id"].clone(), b["data"].clone(), b["object"].clone(), b["kind"].clone(), b["sampled_at"].clone())
    } else {
        let b = body.clone();
        let sampled = json!(if b["timestamp"] == 1_700_000_000_000i64 { "2023-11-14T22:13:20.000Z" } else { "" });
        (b["deviceId"].clone(), b["payload"].clone(), b["property"].clone(), b["kind"].clone(), sampled)
    }
}

pub async fn integration(app: &App, peer: &dyn Peer, name: &str, properties: Value, trigger: Value) -> String {
    let created = app
        .post(
            "/v2/integrations",
            json!({"name": name, "type": peer.type_key(), "direction": "EGRESS", "properties": properties}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    peer.prepare(app, &id).await;
    let t = app.post(&format!("/v2/integrations/{id}/triggers"), trigger).await;
    assert_eq!(t.status, StatusCode::CREATED, "{:?}", t.body);
    id
}

fn with(base: Value, extra: Value) -> Value {
    let mut out = base;
    out.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    out
}

pub async fn ingest(app: &App, records: Vec<Value>) {
    let res = app.post("/v2/telemetry", json!({"records": records})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{:?}", res.body);
}

/// The integration's first delivery once it is no longer pending, with its attempts.
pub async fn settled(app: &App, integration: &str) -> Value {
    for _ in 0..1000 {
        let list = app.get(&format!("/v2/integrations/{integration}/deliveries")).await;
        if let Some(d) = list.body["data"].as_array().and_then(|a| a.first()).filter(|d| d["status"] != "pending") {
            return app.get(&format!("/v2/deliveries/{}", d["id"].as_str().unwrap())).await.body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the delivery of {integration} stayed pending");
}

/// The checks every egress connector passes.
pub async fn conformance(backend: Backend, peer: &dyn Peer) {
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;

    // The catalog offers the type.
    let catalog = app.get(&format!("/v2/integrations/catalog?direction=EGRESS&q={}", peer.type_key())).await;
    let entry = catalog.body["data"].as_array().unwrap().iter().find(|e| e["type"] == peer.type_key()).cloned();
    assert_eq!(entry.map(|e| e["availability"].clone()), Some(json!("available")), "{:?}", catalog.body);

    // A trigger decides: `power` goes, `voltage` does not.
    let id =
        integration(&app, peer, "good", peer.properties(), json!({"kinds": ["value"], "objects": ["power"]})).await;
    ingest(&app, vec![value(&device, "power", json!(12.5)), value(&device, "voltage", json!(230))]).await;
    let first = settled(&app, &id).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let got = peer.receive(1).await.remove(0);
    let body = &got.body;
    let (sent_device, data, object, kind, sampled) = fields(peer, body);
    assert_eq!(sent_device, device.as_str(), "{body}");
    assert_eq!((data, object, kind), (json!(12.5), json!("power"), json!("value")), "{body}");
    assert_eq!(sampled, "2023-11-14T22:13:20.000Z", "{body}");
    assert!(got.delivery_id.starts_with("dlv_"), "the delivery id travels with the message: {got:?}");
    if peer.published_shape() {
        assert_eq!(body["integration_id"], id.as_str(), "{body}");
        assert!(body["published_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{body}");
        assert_eq!(body["delivery_id"], got.delivery_id.as_str(), "and in the body");
    }

    // The delivery log shows what was sent, what the far side said and where it went.
    let delivery = wait_status(&app, &id, "succeeded").await;
    assert_eq!(delivery["id"], got.delivery_id.as_str());
    assert_eq!(&delivery["publishedData"], body, "the log shows exactly what was published");
    assert_eq!(delivery["attempts"][0]["outcome"], "delivered", "{delivery}");
    assert!(delivery["integrationData"]["messageId"].as_str().is_some_and(|m| !m.is_empty()), "{delivery}");
    assert_eq!(delivery["integrationData"]["device"], device.as_str());
    assert!(delivery["target"].as_str().is_some_and(|t| !t.is_empty()), "{delivery}");
    assert!(delivery["completedAt"].as_i64().is_some());
    let all = app.get(&format!("/v2/integrations/{id}/deliveries")).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 1, "voltage matched no trigger: {:?}", all.body);

    // test-send reaches the peer through the action API and lands in the log.
    let started = app
        .post(&format!("/v2/integrations/{id}/actions/test-send"), json!({"property": "ping", "deviceId": device}))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    let done = finished(&app, started.body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let got = peer.receive(1).await.remove(0);
    assert_eq!(fields(peer, &got.body).2, "ping");
    assert_eq!(got.delivery_id, done["result"]["deliveryId"].as_str().unwrap());

    // The objects list narrows the triggers.
    if peer.has_objects() {
        let props = with(peer.properties(), json!({"objects": ["adc_*"]}));
        let narrowed = integration(&app, peer, "objects", props, json!({"kinds": ["value"]})).await;
        ingest(&app, vec![value(&device, "temp", json!(1)), value(&device, "adc_vbterm", json!(12.1))]).await;
        let got = peer.receive(1).await.remove(0);
        assert_eq!((&got.body["integration_id"], &got.body["object"]), (&json!(narrowed), &json!("adc_vbterm")));
        let all = app.get(&format!("/v2/integrations/{narrowed}/deliveries")).await;
        assert_eq!(all.body["data"].as_array().unwrap().len(), 1, "temp is not in the objects: {:?}", all.body);
    }

    // Nothing listening: the delivery waits for its next attempt.
    let down = integration(&app, peer, "down", peer.unreachable(), json!({"kinds": ["alarm"]})).await;
    ingest(
        &app,
        vec![json!({"kind": "alarm", "deviceId": device, "property": "door", "timestamp": 1, "payload": true})],
    )
    .await;
    let retrying = wait_status(&app, &down, "retrying").await;
    assert_eq!(retrying["attempts"][0]["outcome"], "retry", "{retrying}");
    assert!(retrying["nextAttemptAt"].as_i64().is_some(), "{retrying}");
    assert!(retrying["integrationData"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{retrying}");

    // Refused for good: dead at once, with the far side's reason.
    let (props, reason) = peer.refused();
    let refused = integration(&app, peer, "refused", props, json!({"kinds": ["event"]})).await;
    ingest(&app, vec![json!({"kind": "event", "deviceId": device, "property": "boot", "timestamp": 1, "payload": 1})])
        .await;
    let dead = wait_status(&app, &refused, "dead").await;
    assert_eq!(dead["attemptCount"], 1, "no retry for a permanent failure: {dead}");
    assert_eq!(dead["attempts"][0]["outcome"], "rejected", "{dead}");
    let error = dead["integrationData"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(reason), "the far side's reason `{reason}` is kept: {error}");

    // Secrets stay out of every answer.
    let shown = app.get(&format!("/v2/integrations/{id}")).await;
    let given = peer.properties();
    let visible: Vec<&Value> = shown.body["properties"].as_object().unwrap().values().collect();
    let text = shown.body.to_string();
    for name in shown.body["secretsSet"].as_array().unwrap() {
        assert!(shown.body["properties"].get(name.as_str().unwrap()).is_none(), "secret {name} shown");
        // (A generated secret was shown once, at create; a given one never.)
        let secret = &given[name.as_str().unwrap()];
        if let Some(value) = secret.as_str().filter(|_| !visible.contains(&secret)) {
            assert!(!text.contains(value), "secret {name} shown: {text}");
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// A TCP proxy on loopback in front of a peer, to cut the link to it while
/// it keeps running (and keeps what it holds): `cut` closes the listener and
/// every connection through it, `restore` listens on the same port again.
pub struct Proxy {
    pub port: u16,
    target: std::net::SocketAddr,
    tasks: Option<tokio_util::task::TaskTracker>,
    stop: tokio_util::sync::CancellationToken,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let mut proxy =
            Proxy { port: free_port(), target, tasks: None, stop: tokio_util::sync::CancellationToken::new() };
        proxy.restore().await;
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("the proxy's port again");
        let (tasks, stop, target) =
            (tokio_util::task::TaskTracker::new(), tokio_util::sync::CancellationToken::new(), self.target);
        let (inner, token) = (tasks.clone(), stop.clone());
        tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = token.cancelled() => return,
                };
                let Ok((mut client, _)) = accepted else { continue };
                let token = token.clone();
                inner.spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        self.tasks = Some(tasks);
        self.stop = stop;
    }

    pub async fn cut(&mut self) {
        self.stop.cancel();
        if let Some(tasks) = self.tasks.take() {
            tasks.close();
            tasks.wait().await;
        }
    }
}
