//! PARTICLE ingress against a local server speaking Particle's event
//! stream (server-sent events: `event:` the name, `data:` `{data, ttl,
//! published_at, coreid}`, `:ok` keep-alives, `retry:`), with its bearer
//! token check and error answers; it keeps what it is given while no client
//! is connected.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::connectors::free_port;
use crate::ingress::{conformance, ingress_on, state, until, Source};
use crate::{spawn_configured, Backend};

const TOKEN: &str = "particle-token-1";

#[derive(Default)]
struct Cloud {
    /// Events to send: (name, device, data).
    queue: Mutex<VecDeque<(String, String, String)>>,
    ready: tokio::sync::Notify,
    frozen: AtomicBool,
    /// The paths streams were opened on, and when.
    opened: Mutex<Vec<(String, Instant)>>,
    retry_ms: AtomicU64,
    sequence: AtomicU64,
}

struct ParticleCloud {
    port: u16,
    cloud: Arc<Cloud>,
    stop: CancellationToken,
}

impl ParticleCloud {
    async fn start() -> ParticleCloud {
        let mut cloud = ParticleCloud { port: free_port(), cloud: Arc::default(), stop: CancellationToken::new() };
        cloud.up().await;
        cloud
    }

    async fn up(&mut self) {
        self.stop = CancellationToken::new();
        let (cloud, stop) = (self.cloud.clone(), self.stop.clone());
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let (cloud, stop) = (cloud.clone(), stop.clone());
            async move { events(uri, headers, cloud, stop).await }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let stop = self.stop.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
    }
}

/// One event stream: `:ok` at once and every 300 ms, the queued events as they come; nothing while frozen.
async fn events(uri: Uri, headers: HeaderMap, cloud: Arc<Cloud>, stop: CancellationToken) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        let body = json!({"error": "invalid_token", "error_description": "The access token provided is invalid."});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    cloud.opened.lock().unwrap().push((uri.path().to_owned(), Instant::now()));
    let retry = cloud.retry_ms.load(Ordering::SeqCst);
    let first = if retry > 0 { format!("retry: {retry}\n:ok\n\n") } else { ":ok\n\n".to_owned() };
    let stream = futures_util::stream::unfold((Some(first), cloud, stop), |(first, cloud, stop)| async move {
        if let Some(first) = first {
            return Some((Ok::<_, std::io::Error>(Bytes::from(first)), (None, cloud, stop)));
        }
        loop {
            if stop.is_cancelled() {
                return None;
            }
            if cloud.frozen.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let next = cloud.queue.lock().unwrap().pop_front();
            let chunk = match next {
                Some((name, device, data)) => {
                    let n = cloud.sequence.fetch_add(1, Ordering::SeqCst);
                    let event = json!({"data": data, "ttl": 60, "coreid": device,
                                       "published_at": format!("2026-12-02T10:00:00.{n:06}Z")});
                    format!("event: {name}\ndata: {event}\n\n")
                }
                None => {
                    tokio::select! {
                        _ = cloud.ready.notified() => continue,
                        _ = tokio::time::sleep(Duration::from_millis(300)) => ":ok\n\n".to_owned(),
                        _ = stop.cancelled() => return None,
                    }
                }
            };
            return Some((Ok(Bytes::from(chunk)), (None, cloud, stop)));
        }
    });
    ([("content-type", "text/event-stream")], Body::from_stream(stream)).into_response()
}

#[async_trait::async_trait]
impl Source for ParticleCloud {
    fn type_key(&self) -> &'static str {
        "PARTICLE"
    }
    fn properties(&self) -> Value {
        json!({"accessToken": TOKEN, "apiUrl": format!("http://127.0.0.1:{}", self.port), "eventNames": ["reading*"],
               "format": "json", "keepAliveTimeoutSeconds": 2})
    }
    fn source_ref(&self, _external: &str) -> String {
        "reading".into()
    }
    async fn send(&self, external: &str, payloads: &[Vec<u8>]) {
        for p in payloads {
            let data = String::from_utf8(p.clone()).unwrap();
            self.cloud.queue.lock().unwrap().push_back(("reading".into(), external.into(), data));
        }
        self.cloud.ready.notify_waiters();
    }
    async fn stop(&mut self) {
        self.stop.cancel();
        crate::connectors::until_port_free(self.port).await;
    }
    async fn start(&mut self) {
        self.up().await
    }
}

async fn particle_ingress_passes_the_ingress_checks(backend: Backend) {
    let mut cloud = ParticleCloud::start().await;
    conformance(backend, &mut cloud).await;
    let opened = cloud.cloud.opened.lock().unwrap().clone();
    assert!(
        opened.iter().all(|(path, _)| path == "/v1/devices/events/reading"),
        "mine, with the prefix asked: {opened:?}"
    );
}

on_both_stores!(particle_ingress_passes_the_ingress_checks);

/// A stream that goes quiet is given up after the keep-alive timeout; the
/// next one waits the `retry:` the stream asked for; events other than those
/// asked for are not stored; a refused token is the status's error.
#[tokio::test]
async fn a_quiet_stream_is_reopened_after_its_retry_and_only_wanted_events_are_stored() {
    let cloud = ParticleCloud::start().await;
    cloud.cloud.retry_ms.store(3000, Ordering::SeqCst);
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    let extra = json!({"eventNames": ["reading", "temp*"], "format": "raw", "product": "my-fleet"});
    let id = ingress_on(&app, &cloud, &device_path, extra).await;
    let integration = format!("/v2/integrations/{id}");
    until(&app, &integration, "connected", |i| state(i) == "connected").await;
    for (name, data) in [("reading", "12.5"), ("readings", "1"), ("temp/room", "21"), ("other", "3")] {
        cloud.cloud.queue.lock().unwrap().push_back((name.into(), "sensor-7".into(), data.into()));
    }
    cloud.cloud.ready.notify_waiters();
    let telemetry = format!("/v2/telemetry?deviceId={device}");
    let stored = until(&app, &telemetry, "two events", |l| crate::ingress::records(l).len() == 2).await;
    let mut got: Vec<(String, Value)> = crate::ingress::records(&stored)
        .iter()
        .map(|r| (r["record"]["property"].as_str().unwrap().to_owned(), r["record"]["payload"].clone()))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [("reading".to_owned(), json!(12.5)), ("temp/room".to_owned(), json!(21))],
        "raw: one value named after the event"
    );
    let log = app.get(&format!("{integration}/messages?limit=1")).await.body;
    let attributes = log["data"][0]["attributes"].to_string();
    assert!(attributes.contains("coreid") && attributes.contains("published_at"), "{attributes}");
    assert!(log["data"][0]["sourceId"].as_str().unwrap().starts_with("sensor-7/2026-12-02T10:00:00."), "{log:#}");

    cloud.cloud.frozen.store(true, Ordering::SeqCst);
    let quiet = until(&app, &integration, "reconnecting", |i| state(i) == "reconnecting").await;
    assert_eq!(quiet["connection"]["lastError"], "nothing from the stream for 2 s");
    let gave_up = Instant::now();
    cloud.cloud.frozen.store(false, Ordering::SeqCst);
    until(&app, &integration, "connected again", |i| state(i) == "connected").await;
    let opened = cloud.cloud.opened.lock().unwrap().clone();
    let (path, reopened) = opened.last().unwrap().clone();
    assert_eq!(path, "/v1/products/my-fleet/events", "two filters: every event is asked for, and filtered here");
    assert!(reopened.duration_since(gave_up) >= Duration::from_millis(2900), "retry: 3000 was honoured");

    let refused = ingress_on(&app, &cloud, &device_path, json!({"accessToken": "wrong"})).await;
    let failing = until(&app, &format!("/v2/integrations/{refused}"), "refused", |i| state(i) == "reconnecting").await;
    assert_eq!(failing["connection"]["lastError"], "Particle answered 401: The access token provided is invalid.");
}
