//! GCP_PUBSUB against a local peer: no Pub/Sub emulator installs here, so
//! the peer speaks the two APIs the connector uses, the OAuth token
//! exchange (RFC 7523 JWT bearer) and `topics.publish`, and checks each
//! JWT's RS256 signature against the public half of the service-account
//! key (made with openssl for the test).
use std::collections::HashSet;
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
    public: Arc<Vec<u8>>,
    tokens: Arc<Mutex<HashSet<String>>>,
    topics: Arc<HashSet<String>>,
    /// (topic, message data as JSON, attributes)
    got: Arc<Mutex<Vec<(String, Value, Value)>>>,
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
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| g.tokens.lock().unwrap().contains(t)) {
        let e = json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}});
        return (Http::UNAUTHORIZED, Json(e)).into_response();
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let g = Google {
            url: format!("http://{}", listener.local_addr().unwrap()),
            public: Arc::new(public),
            topics: Arc::new(topics.iter().map(|t| t.to_string()).collect()),
            ..Default::default()
        };
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/v1/projects/{project}/topics/{topic}", axum::routing::post(publish))
            .with_state(g.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        g
    }
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
            json!({"name": "x", "type": "GCP_PUBSUB", "properties": {"accountKeyJson": "{}", "topic": "t"}}),
        )
        .await;
    assert_eq!(bad.fields(), ["properties.accountKeyJson", "properties.topic"]);
}

on_both_stores!(pubsub_passes_the_connector_checks, an_unknown_key_is_refused_for_good);
