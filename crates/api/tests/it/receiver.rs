//! What the data-path tests share: a real HTTP receiver that records what
//! it got and answers as scripted, an independent Standard Webhooks
//! signature check, and shortcuts to a webhook with a trigger, a record and
//! a delivery in a given state.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::Mac;
use serde_json::{json, Value};

use crate::App;

/// What the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or_default()
    }
}

/// One scripted answer: status, extra headers, delay.
#[derive(Clone)]
pub struct Answer(pub u16, pub Vec<(&'static str, &'static str)>, pub Duration);

#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    pub url: String,
}

async fn record(State(r): State<Receiver>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let answer = r.script.lock().unwrap().pop_front().unwrap_or(Answer(200, vec![], Duration::ZERO));
    tokio::time::sleep(answer.2).await;
    r.got.lock().unwrap().push(Received { path: uri.path().to_owned(), headers, body });
    let mut response = (StatusCode::from_u16(answer.0).unwrap(), "receiver says hi").into_response();
    for (k, v) in answer.1 {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

impl Receiver {
    pub async fn start(script: Vec<Answer>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = Receiver { script: Arc::new(Mutex::new(script.into())), ..Default::default() };
        r.url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(record).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// What arrived, once nothing more has for `quiet`, measured from the
    /// last arrival (or from the call, when nothing comes); 10 s at most.
    /// For "nothing else arrives" assertions: the wait ends as soon as the
    /// traffic does, and a late arrival restarts it.
    pub async fn settled(&self, quiet: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let (mut seen, mut last) = (self.received().len(), tokio::time::Instant::now());
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = self.received().len();
            if now != seen {
                (seen, last) = (now, tokio::time::Instant::now());
            } else if last.elapsed() >= quiet {
                break;
            }
        }
        self.received()
    }

    /// Waits until `n` requests arrived (10 s at most).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..1000 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the receiver got {} requests, expected {n}", self.received().len());
    }
}

/// Verifies a Standard Webhooks signature independently of Switchyard's code.
pub fn verify(secret: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.header("webhook-id"), r.header("webhook-timestamp")).as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    r.header("webhook-signature").split(' ').any(|s| s == expected)
}

pub struct Setup {
    pub integration: String,
    pub secret: String,
    pub device: String,
    pub place: String,
}

/// A device, a webhook integration to `url` with `properties`, and a trigger.
pub async fn webhook_with_trigger(app: &App, url: &str, properties: Value, trigger: Value) -> Setup {
    let (place, device, _) = app.place_and_device("meter").await;
    let mut props = json!({"url": url});
    props.as_object_mut().unwrap().extend(properties.as_object().unwrap().clone());
    let created = app.post("/v2/integrations", json!({"name": "hook", "type": "WEBHOOK", "properties": props})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let integration = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["generatedSecrets"]["secret"].as_str().unwrap_or_default().to_owned();
    let t = app.post(&format!("/v2/integrations/{integration}/triggers"), trigger).await;
    assert_eq!(t.status, StatusCode::CREATED, "{:?}", t.body);
    Setup { integration, secret, device, place }
}

pub fn value(device: &str, property: &str, payload: Value) -> Value {
    json!({"kind": "value", "deviceId": device, "property": property, "timestamp": 1_700_000_000_000i64, "payload": payload})
}

/// Polls the delivery log until a delivery has this status (10 s at most).
pub async fn wait_status(app: &App, integration: &str, status: &str) -> Value {
    for _ in 0..1000 {
        let list = app.get(&format!("/v2/integrations/{integration}/deliveries?status={status}")).await;
        if let Some(d) = list.body["data"].as_array().and_then(|a| a.first()) {
            return app.get(&format!("/v2/deliveries/{}", d["id"].as_str().unwrap())).await.body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {status} delivery for {integration}");
}
