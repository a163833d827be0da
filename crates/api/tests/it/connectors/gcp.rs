//! GCP_PUBSUB against a local peer: no Pub/Sub emulator installs here, so
//! the peer speaks the APIs the connector uses: the OAuth token exchange
//! (RFC 7523 JWT bearer), checking each JWT's RS256 signature against the
//! public half of the service-account key (made with openssl for the test);
//! `topics.publish`; and for subscribing, `subscriptions.create`, `pull`,
//! `acknowledge` and `modifyAckDeadline`, with a message not acknowledged
//! within its deadline delivered again (and a nack, deadline 0, at once).
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode as Http};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use super::{conformance, free_port, ingest, integration, Got, Peer};
use crate::receiver::{value, wait_status};
use crate::Backend;

const EMAIL: &str = "publisher@sy-test.iam.gserviceaccount.com";

/// An RSA key pair from openssl: the PKCS#8 PEM and the public key (PKCS#1 DER).
fn key_pair(dir: &std::path::Path, name: &str) -> (String, Vec<u8>) {
    let pem = dir.join(format!("{name}.pem"));
    let der = dir.join(format!("{name}.der"));
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl").args(args).output().expect("openssl (Debian's openssl package)");
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    };
    run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem.to_str().unwrap()]);
    run(&["rsa", "-in", pem.to_str().unwrap(), "-RSAPublicKey_out", "-outform", "DER", "-out", der.to_str().unwrap()]);
    (std::fs::read_to_string(pem).unwrap(), std::fs::read(der).unwrap())
}

#[derive(Clone, Default)]
struct Google {
    url: String,
    port: u16,
    public: Arc<Vec<u8>>,
    tokens: Arc<Mutex<HashSet<String>>>,
    topics: Arc<HashSet<String>>,
    /// (topic, message data as JSON, attributes)
    got: Arc<Mutex<Vec<(String, Value, Value)>>>,
    subscriptions: Arc<Mutex<HashMap<String, Subscription>>>,
    published: Arc<tokio::sync::Notify>,
    stop: Arc<Mutex<tokio_util::sync::CancellationToken>>,
}

/// A message as a subscription holds it: its JSON (`data`, `attributes`,
/// `messageId`, `publishTime`) and how many times it was delivered.
#[derive(Clone)]
struct Held {
    message: Value,
    attempts: u32,
}

#[derive(Default)]
struct Subscription {
    topic: String,
    deadline: u64,
    queue: VecDeque<Held>,
    /// By ack id: the message and when its deadline ends.
    outstanding: HashMap<String, (Held, std::time::Instant)>,
    next_ack: u64,
    /// The most times any message was delivered.
    most_attempts: u32,
}

/// The 401 for a request without a token this peer issued.
fn unauthorized(g: &Google, headers: &HeaderMap) -> Option<Response> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|t| g.tokens.lock().unwrap().contains(t)) {
        return None;
    }
    let e = json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}});
    Some((Http::UNAUTHORIZED, Json(e)).into_response())
}

fn google_error(status: Http, code: &str, message: String) -> Response {
    (status, Json(json!({"error": {"code": status.as_u16(), "message": message, "status": code}}))).into_response()
}

async fn create_subscription(
    State(g): State<Google>,
    Path((project, name)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = unauthorized(&g, &headers) {
        return refused;
    }
    let full = format!("projects/{project}/subscriptions/{name}");
    let topic = body["topic"].as_str().unwrap_or_default().to_owned();
    if !g.topics.contains(&topic) {
        return google_error(Http::NOT_FOUND, "NOT_FOUND", format!("Resource not found (resource={topic})."));
    }
    let mut subs = g.subscriptions.lock().unwrap();
    if subs.contains_key(&full) {
        return google_error(Http::CONFLICT, "ALREADY_EXISTS", "Resource already exists in the project".into());
    }
    let deadline = body["ackDeadlineSeconds"].as_u64().unwrap_or(10);
    subs.insert(full.clone(), Subscription { topic: topic.clone(), deadline, ..Default::default() });
    Json(json!({"name": full, "topic": topic, "ackDeadlineSeconds": deadline})).into_response()
}

/// `…/subscriptions/{name}:pull`, `:acknowledge` and `:modifyAckDeadline`.
async fn subscription_call(
    State(g): State<Google>,
    Path((project, call)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = unauthorized(&g, &headers) {
        return refused;
    }
    let Some((name, verb)) = call.split_once(':') else { return Http::NOT_FOUND.into_response() };
    let full = format!("projects/{project}/subscriptions/{name}");
    let ids = |v: &Value| {
        v["ackIds"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)).collect::<Vec<_>>()
    };
    match verb {
        "pull" => {
            let max = body["maxMessages"].as_u64().unwrap_or(1) as usize;
            for round in 0..50 {
                {
                    let mut subs = g.subscriptions.lock().unwrap();
                    let Some(s) = subs.get_mut(&full) else {
                        return google_error(
                            Http::NOT_FOUND,
                            "NOT_FOUND",
                            format!("Resource not found (resource={name})."),
                        );
                    };
                    let now = std::time::Instant::now();
                    let expired: Vec<String> =
                        s.outstanding.iter().filter(|(_, (_, until))| *until <= now).map(|(k, _)| k.clone()).collect();
                    for id in expired {
                        let (held, _) = s.outstanding.remove(&id).unwrap();
                        s.queue.push_front(held);
                    }
                    if !s.queue.is_empty() || round == 49 {
                        let mut received = Vec::new();
                        while received.len() < max {
                            let Some(mut held) = s.queue.pop_front() else { break };
                            held.attempts += 1;
                            s.most_attempts = s.most_attempts.max(held.attempts);
                            s.next_ack += 1;
                            let ack = format!("{name}-{}", s.next_ack);
                            received
                                .push(json!({"ackId": ack, "message": held.message, "deliveryAttempt": held.attempts}));
                            s.outstanding.insert(ack, (held, now + Duration::from_secs(s.deadline)));
                        }
                        return Json(json!({"receivedMessages": received})).into_response();
                    }
                }
                let _ = tokio::time::timeout(Duration::from_millis(20), g.published.notified()).await;
            }
            unreachable!()
        }
        "acknowledge" => {
            let mut subs = g.subscriptions.lock().unwrap();
            if let Some(s) = subs.get_mut(&full) {
                for id in ids(&body) {
                    s.outstanding.remove(&id);
                }
            }
            Json(json!({})).into_response()
        }
        "modifyAckDeadline" => {
            let seconds = body["ackDeadlineSeconds"].as_u64().unwrap_or(0);
            let mut subs = g.subscriptions.lock().unwrap();
            if let Some(s) = subs.get_mut(&full) {
                for id in ids(&body) {
                    if seconds == 0 {
                        if let Some((held, _)) = s.outstanding.remove(&id) {
                            s.queue.push_front(held);
                        }
                    } else if let Some((_, until)) = s.outstanding.get_mut(&id) {
                        *until = std::time::Instant::now() + Duration::from_secs(seconds);
                    }
                }
            }
            g.published.notify_waiters();
            Json(json!({})).into_response()
        }
        _ => Http::NOT_FOUND.into_response(),
    }
}

async fn token(State(g): State<Google>, Form(form): Form<std::collections::HashMap<String, String>>) -> Response {
    let refuse = |why: &str| {
        (Http::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": why}))).into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse("unsupported grant_type");
    }
    let jwt = form.get("assertion").cloned().unwrap_or_default();
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else { return refuse("Invalid JWT.") };
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, g.public.as_slice());
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
    if key.verify(format!("{header}.{claims}").as_bytes(), &signature).is_err() {
        return refuse("Invalid JWT Signature.");
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let valid = header["alg"] == "RS256"
        && claims["iss"] == EMAIL
        && claims["aud"] == format!("{}/token", g.url)
        && claims["scope"]
            .as_str()
            .is_some_and(|s| s.split(' ').any(|s| s == "https://www.googleapis.com/auth/pubsub"))
        && claims["exp"].as_u64().is_some_and(|e| e > now && e <= now + 3600);
    if !valid {
        return refuse("Invalid JWT claims.");
    }
    let issued = format!("ya29.test-{}", g.tokens.lock().unwrap().len());
    g.tokens.lock().unwrap().insert(issued.clone());
    Json(json!({"access_token": issued, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

async fn publish(
    State(g): State<Google>,
    Path((project, topic)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = unauthorized(&g, &headers) {
        return refused;
    }
    let Some(topic) = topic.strip_suffix(":publish") else { return Http::NOT_FOUND.into_response() };
    let name = format!("projects/{project}/topics/{topic}");
    if !g.topics.contains(&name) {
        let e = json!({"error": {"code": 404, "message": format!("Resource not found (resource={topic})."), "status": "NOT_FOUND"}});
        return (Http::NOT_FOUND, Json(e)).into_response();
    }
    let mut ids = Vec::new();
    for m in body["messages"].as_array().cloned().unwrap_or_default() {
        let data: Value = serde_json::from_slice(&STANDARD.decode(m["data"].as_str().unwrap()).unwrap()).unwrap();
        let mut got = g.got.lock().unwrap();
        ids.push(format!("{}", 4985640066378276u64 + got.len() as u64));
        got.push((name.clone(), data, m["attributes"].clone()));
    }
    Json(json!({"messageIds": ids})).into_response()
}

impl Google {
    async fn start(public: Vec<u8>, topics: &[&str]) -> Google {
        let port = free_port();
        let g = Google {
            url: format!("http://127.0.0.1:{port}"),
            port,
            public: Arc::new(public),
            topics: Arc::new(topics.iter().map(|t| t.to_string()).collect()),
            ..Default::default()
        };
        g.up().await;
        g
    }

    /// Serves on its port; what it holds stays across `down` and `up`.
    async fn up(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        *self.stop.lock().unwrap() = stop.clone();
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/v1/projects/{project}/topics/{topic}", axum::routing::post(publish))
            .route(
                "/v1/projects/{project}/subscriptions/{name}",
                axum::routing::put(create_subscription).post(subscription_call),
            )
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
    }

    async fn down(&self) {
        self.stop.lock().unwrap().cancel();
        super::until_port_free(self.port).await;
    }

    /// Publishes to every subscription of `topic`, as a publisher would.
    fn inject(&self, topic: &str, data: &[u8], attributes: Value) {
        let mut subs = self.subscriptions.lock().unwrap();
        for s in subs.values_mut().filter(|s| s.topic == topic) {
            let n = s.next_ack + s.queue.len() as u64 + s.outstanding.len() as u64;
            let message = json!({"data": STANDARD.encode(data), "attributes": attributes,
                "messageId": format!("{}-{n}-{}", switchyard_core::now_ms(), rand_suffix()), "publishTime": "2026-12-02T10:00:00Z"});
            s.queue.push_back(Held { message, attempts: 0 });
        }
        self.published.notify_waiters();
    }
}

fn rand_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

struct PubSub {
    google: Google,
    key: String,
    seen: Mutex<usize>,
    _dir: tempfile::TempDir,
}

impl PubSub {
    async fn start() -> PubSub {
        let dir = tempfile::tempdir().unwrap();
        let (pem, public) = key_pair(dir.path(), "account");
        let google = Google::start(public, &["projects/sy-test/topics/readings"]).await;
        let key =
            json!({"type": "service_account", "project_id": "sy-test", "private_key_id": "k1", "private_key": pem,
                         "client_email": EMAIL, "token_uri": format!("{}/token", google.url)})
            .to_string();
        PubSub { google, key, seen: Mutex::new(0), _dir: dir }
    }

    fn take(&self, n: usize) -> Option<Vec<(String, Value, Value)>> {
        let got = self.google.got.lock().unwrap();
        let mut seen = self.seen.lock().unwrap();
        (got.len() >= *seen + n).then(|| {
            let new = got[*seen..*seen + n].to_vec();
            *seen += n;
            new
        })
    }
}

#[async_trait]
impl Peer for PubSub {
    fn type_key(&self) -> &'static str {
        "GCP_PUBSUB"
    }
    fn properties(&self) -> Value {
        // A short topic name in the key's project.
        json!({"accountKeyJson": self.key, "topic": "readings", "endpointUrl": self.google.url})
    }
    fn unreachable(&self) -> Value {
        let mut p = self.properties();
        p["endpointUrl"] = json!(format!("http://127.0.0.1:{}", free_port()));
        p
    }
    fn refused(&self) -> (Value, &'static str) {
        let mut p = self.properties();
        p["topic"] = json!("projects/sy-test/topics/missing");
        (p, "NOT_FOUND: Resource not found (resource=missing).")
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        for _ in 0..500 {
            if let Some(new) = self.take(n) {
                return new
                    .into_iter()
                    .map(|(topic, body, attributes)| {
                        assert_eq!(topic, "projects/sy-test/topics/readings");
                        Got { delivery_id: attributes["switchyard-delivery-id"].as_str().unwrap().to_owned(), body }
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("Pub/Sub got {} messages", self.google.got.lock().unwrap().len());
    }
}

async fn pubsub_passes_the_connector_checks(backend: Backend) {
    conformance(backend, &PubSub::start().await).await;
}

/// A key the far side does not know (its signature does not verify): the
/// token request is refused and the delivery is dead at once.
async fn an_unknown_key_is_refused_for_good(backend: Backend) {
    let peer = PubSub::start().await;
    let (other, _) = key_pair(peer._dir.path(), "other");
    let mut key: Value = serde_json::from_str(&peer.key).unwrap();
    key["private_key"] = json!(other);
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let mut props = peer.properties();
    props["accountKeyJson"] = json!(key.to_string());
    let id = integration(&app, &peer, "other key", props, json!({"kinds": ["value"]})).await;
    ingest(&app, vec![value(&device, "power", json!(1))]).await;
    let dead = wait_status(&app, &id, "dead").await;
    assert_eq!(dead["attemptCount"], 1);
    assert!(dead["lastError"].as_str().unwrap().contains("Invalid JWT Signature"), "{dead}");
    assert!(!dead.to_string().contains("PRIVATE KEY"), "the key stays out of the log");
    // A key that is not a service-account key is refused when saved.
    let bad = app
        .post(
            "/v2/integrations",
            json!({"name": "x", "type": "GCP_PUBSUB", "direction": "EGRESS", "properties": {"accountKeyJson": "{}", "topic": "t"}}),
        )
        .await;
    assert_eq!(bad.fields(), ["properties.accountKeyJson", "properties.topic"]);
}

/// A subscription on the local peer, its messages naming their device in the `device` attribute.
struct PubSubSource(PubSub);

#[async_trait]
impl crate::ingress::Source for PubSubSource {
    fn type_key(&self) -> &'static str {
        "GCP_PUBSUB"
    }
    fn properties(&self) -> Value {
        json!({"accountKeyJson": self.0.key, "topics": ["readings"], "endpointUrl": self.0.google.url,
               "ackDeadlineSeconds": 10, "format": "json", "externalIdFrom": "attribute:device"})
    }
    fn source_ref(&self, _external: &str) -> String {
        "readings".into()
    }
    async fn send(&self, external: &str, payloads: &[Vec<u8>]) {
        // Once the integration's subscription exists, as a publisher's messages only reach existing ones.
        for _ in 0..500 {
            if !self.0.google.subscriptions.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for p in payloads {
            self.0.google.inject("projects/sy-test/topics/readings", p, json!({"device": external}));
        }
    }
    async fn stop(&mut self) {
        self.0.google.down().await
    }
    async fn start(&mut self) {
        self.0.google.up().await
    }
}

impl PubSubSource {
    /// Messages still held (queued or outstanding), and the most times any was delivered.
    fn held(&self) -> (usize, u32) {
        let subs = self.0.google.subscriptions.lock().unwrap();
        let held = subs.values().map(|s| s.queue.len() + s.outstanding.len()).sum();
        (held, subs.values().map(|s| s.most_attempts).max().unwrap_or(0))
    }
}

async fn pubsub_ingress_passes_the_ingress_checks(backend: Backend) {
    let mut source = PubSubSource(PubSub::start().await);
    crate::ingress::conformance(backend, &mut source).await;
    assert_eq!(source.held().0, 0, "every message stored is acknowledged");
    let subs = source.0.google.subscriptions.lock().unwrap();
    assert!(subs.keys().all(|k| k.starts_with("projects/sy-test/subscriptions/switchyard-int_")), "{:?}", subs.keys());
}

/// 200 at 20/s with a 10 s ack deadline: the deadline is extended while
/// they wait, so none is delivered twice.
async fn a_pubsub_burst_waits_with_its_deadline_extended(backend: Backend) {
    let source = PubSubSource(PubSub::start().await);
    crate::ingress::burst_conformance(backend, &source).await;
    let (held, most) = source.held();
    assert_eq!((held, most), (0, 1), "all acknowledged, each delivered once");
}

on_both_stores!(
    pubsub_passes_the_connector_checks,
    an_unknown_key_is_refused_for_good,
    pubsub_ingress_passes_the_ingress_checks,
    a_pubsub_burst_waits_with_its_deadline_extended
);
