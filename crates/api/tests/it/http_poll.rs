//! HTTP_POLL against a local vendor API this test runs: readings by time
//! window (`since`, `until` in ms) with a bearer token, in pages of three
//! (a page number, an offset, a next URL in the body or a `Link` header), a
//! state endpoint with an `ETag` that answers 304 while nothing changed,
//! and scripted failures (401, 429 with `Retry-After`, 503).
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode as Status;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::connectors::free_port;
use crate::ingress::{burst_conformance, conformance, ingress_on, records, state, until, Source};
use crate::{spawn_configured, Backend};

const TOKEN: &str = "vendor-token-1";

/// One request the vendor was sent.
#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    headers: HeaderMap,
    at: Instant,
}

/// A scripted answer: status, headers, body.
type Scripted = (u16, Vec<(&'static str, String)>, String);

#[derive(Default)]
struct Books {
    /// Readings as (when the vendor got them, ms; the reading).
    items: Mutex<Vec<(i64, Value)>>,
    /// Answers given before the real one.
    script: Mutex<VecDeque<Scripted>>,
    seen: Mutex<Vec<Seen>>,
    /// A request for this page waits until `release` (once).
    hold: Mutex<Option<String>>,
    release: tokio::sync::Notify,
    /// The state endpoint's version: its ETag.
    version: Mutex<u64>,
    /// The bodies POSTed to the feed.
    bodies: Mutex<Vec<Value>>,
}

struct Vendor {
    port: u16,
    books: Arc<Books>,
    stop: CancellationToken,
    page_size: usize,
}

#[derive(serde::Deserialize)]
struct Params {
    since: Option<i64>,
    until: Option<i64>,
    page: Option<usize>,
    offset: Option<usize>,
    style: Option<String>,
}

impl Vendor {
    async fn start(page_size: usize) -> Vendor {
        let mut vendor = Vendor { port: free_port(), books: Arc::default(), stop: CancellationToken::new(), page_size };
        vendor.up().await;
        vendor
    }

    async fn up(&mut self) {
        self.stop = CancellationToken::new();
        let size = self.page_size;
        let app = axum::Router::new()
            .route(
                "/v1/readings",
                axum::routing::get(move |s, q, u, h| readings(s, q, u, h, size))
                    .post(move |s, q, u, h| readings(s, q, u, h, size)),
            )
            .route("/v1/state", axum::routing::get(current))
            .route("/v1/feed", axum::routing::post(feed))
            .with_state(self.books.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let stop = self.stop.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn add(&self, reading: Value) {
        self.add_at(now(), reading)
    }

    /// A reading the vendor got at `at` (ms).
    fn add_at(&self, at: i64, reading: Value) {
        self.books.items.lock().unwrap().push((at, reading));
        *self.books.version.lock().unwrap() += 1;
    }

    fn script(&self, status: u16, headers: Vec<(&'static str, String)>, body: &str) {
        self.books.script.lock().unwrap().push_back((status, headers, body.to_owned()));
    }

    fn seen(&self) -> Vec<Seen> {
        self.books.seen.lock().unwrap().clone()
    }

    /// The first request whose URL holds `part`, once it came.
    async fn asked_for(&self, part: &str) -> Seen {
        loop {
            if let Some(s) = self.seen().into_iter().find(|s| s.uri.contains(part)) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The integration's properties: readings by window, `/data` the items,
    /// `device` naming the device, one poll a second.
    fn readings_properties(&self, pagination: &str) -> Value {
        let url = format!("{}/v1/readings?since={{{{ since_ms }}}}&until={{{{ until_ms }}}}", self.base());
        json!({"url": url, "auth": "bearer", "token": TOKEN, "itemsPointer": "/data", "format": "json",
               "externalIdFrom": "pointer:/device", "intervalSeconds": 1, "pagination": pagination})
    }
}

/// The bearer token, then the script, then the page of the window asked for.
fn refused(b: &Books, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    b.seen.lock().unwrap().push(Seen { uri: uri.to_string(), headers: headers.clone(), at: Instant::now() });
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return Some((StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_token"}))).into_response());
    }
    let (status, extra, body) = b.script.lock().unwrap().pop_front()?;
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in extra {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    Some(response)
}

async fn readings(
    State(b): State<Arc<Books>>,
    Query(p): Query<Params>,
    uri: Uri,
    headers: HeaderMap,
    size: usize,
) -> Response {
    if let Some(r) = refused(&b, &uri, &headers) {
        return r;
    }
    let held = b.hold.lock().unwrap().clone();
    if held.is_some_and(|h| uri.to_string().contains(&h)) {
        *b.hold.lock().unwrap() = None;
        b.release.notified().await;
    }
    let (since, until) = (p.since.unwrap_or(0), p.until.unwrap_or(i64::MAX));
    let window: Vec<Value> =
        b.items.lock().unwrap().iter().filter(|(t, _)| *t >= since && *t < until).map(|(_, v)| v.clone()).collect();
    let style = p.style.as_deref().unwrap_or("page");
    let start = match style {
        "offset" => p.offset.unwrap_or(0),
        _ => (p.page.unwrap_or(1).max(1) - 1) * size,
    };
    let data: Vec<Value> = window.iter().skip(start).take(size).cloned().collect();
    let more = start + data.len() < window.len();
    let next = format!("/v1/readings?since={since}&until={until}&style={style}&page={}", p.page.unwrap_or(1) + 1);
    let mut body = json!({"data": data});
    if style == "next" && more {
        body["links"] = json!({"next": next});
    }
    let mut response = axum::Json(body).into_response();
    if style == "link" && more {
        let link = format!(
            "<http://{}{next}>; rel=\"next\", </v1/readings>; rel=\"first\"",
            headers["host"].to_str().unwrap()
        );
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

/// The readings after the cursor in the POSTed body (`{"after": "N"}`),
/// with the next cursor; an API key header instead of the bearer token.
async fn feed(State(b): State<Arc<Books>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    b.bodies.lock().unwrap().push(asked.clone());
    if headers.get("x-vendor-key").and_then(|v| v.to_str().ok()) != Some("vendor-key-1") {
        return (StatusCode::UNAUTHORIZED, "no key").into_response();
    }
    let after: usize = asked["after"].as_str().and_then(|a| a.parse().ok()).unwrap_or(0);
    let data: Vec<Value> = b.items.lock().unwrap().iter().skip(after).map(|(_, v)| v.clone()).collect();
    axum::Json(json!({"data": data, "cursor": (after + data.len()).to_string()})).into_response()
}

/// Every reading, with an ETag of the version: 304 when the caller has it.
async fn current(State(b): State<Arc<Books>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&b, &uri, &headers) {
        return r;
    }
    let etag = format!("\"v{}\"", b.version.lock().unwrap());
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(&etag) {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    let data: Vec<Value> = b.items.lock().unwrap().iter().map(|(_, v)| v.clone()).collect();
    ([("etag", etag)], axum::Json(json!({"data": data}))).into_response()
}

fn now() -> i64 {
    switchyard_core::now_ms()
}

#[async_trait::async_trait]
impl Source for Vendor {
    fn type_key(&self) -> &'static str {
        "HTTP_POLL"
    }
    fn properties(&self) -> Value {
        self.readings_properties("page")
    }
    fn source_ref(&self, _external: &str) -> String {
        "v1/readings".into()
    }
    async fn send(&self, external: &str, payloads: &[Vec<u8>]) {
        for p in payloads {
            self.add(reading(external, p));
        }
    }
    fn wire(&self, external: &str, payload: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&reading(external, payload)).unwrap()
    }
    async fn stop(&mut self) {
        self.stop.cancel();
        crate::connectors::until_port_free(self.port).await;
    }
    async fn start(&mut self) {
        self.up().await
    }
    fn poison(&self) -> (&'static [u8], &'static str) {
        (br#""not an object""#, "the values must be a JSON object")
    }
}

/// A reading as the vendor lists it: the payload's fields and the device's name.
fn reading(external: &str, payload: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(payload).unwrap() {
        Value::Object(mut fields) => {
            fields.insert("device".into(), json!(external));
            Value::Object(fields)
        }
        other => other,
    }
}

async fn http_poll_passes_the_ingress_checks(backend: Backend) {
    let mut vendor = Vendor::start(100).await;
    conformance(backend, &mut vendor).await;
    let seen = vendor.seen();
    assert!(seen.iter().all(|s| s.uri.starts_with("/v1/readings?since=")), "{:?}", seen[0]);
}

async fn a_burst_waits_for_the_rate_limit(backend: Backend) {
    burst_conformance(backend, &Vendor::start(1000).await).await;
}

/// Ten readings in pages of three, the next page named by the body: every
/// page is followed; a restart while the third is being fetched resumes at
/// the third page of the same window, and nothing is stored twice.
async fn pages_are_followed_and_a_restart_resumes_at_the_page_it_stopped(backend: Backend) {
    let vendor = Vendor::start(3).await;
    let app = spawn_configured(backend, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    let mut properties = vendor.readings_properties("nextUrl");
    properties["url"] = json!(format!("{}&style=next", properties["url"].as_str().unwrap()));
    properties["nextPointer"] = json!("/links/next");
    properties["intervalSeconds"] = json!(2);
    properties["timestampPointer"] = json!("/at");
    let id = ingress_on(&app, &vendor, &device_path, properties).await;
    let integration = format!("/v2/integrations/{id}");
    let polled =
        until(&app, &integration, "a first poll", |i| i["connection"]["poll"]["lastOutcome"] == "polled").await;
    assert_eq!(polled["connection"]["state"], "connected");
    let next = polled["connection"]["poll"]["nextPollAt"].as_i64().unwrap();
    let last = polled["connection"]["poll"]["lastPollAt"].as_i64().unwrap();
    assert!((2_000..=2_200).contains(&(next - last)), "the next poll an interval later: {polled:#}");

    *vendor.books.hold.lock().unwrap() = Some("page=3".into());
    for n in 0..10 {
        vendor.add(json!({"device": "sensor-7", "n": n, "at": 1_700_000_000_000i64 + n * 1000}));
    }
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=100");
    until(&app, &telemetry, "the first two pages", |l| records(l).len() == 6).await;
    let held = vendor.asked_for("page=3").await;
    let app = app.restart().await;
    vendor.books.release.notify_waiters();
    until(&app, &telemetry, "all ten", |l| records(l).len() == 10).await;
    let after: Vec<Seen> = vendor.seen().into_iter().filter(|s| s.at > held.at).collect();
    assert_eq!(after[0].uri, held.uri, "the poll resumed at the page it stopped at, of the same window");
    let mut seen: Vec<i64> =
        records(&app.get(&telemetry).await.body).iter().map(|r| r["record"]["payload"].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>(), "each once");
    // Polls go on, and find nothing new.
    let polls = vendor.seen().len();
    until(&app, &integration, "another poll", |i| {
        i["connection"]["poll"]["lastOutcome"] == "polled" && i["connection"]["poll"]["lastMessages"] == 0
    })
    .await;
    assert!(vendor.seen().len() > polls);
    assert_eq!(records(&app.get(&telemetry).await.body).len(), 10);
}

/// The other ways to the next page: a `Link` header, a page number, an offset.
async fn every_pagination_style_reaches_the_last_page(backend: Backend) {
    let vendor = Vendor::start(3).await;
    let app = spawn_configured(backend, |_| {}).await;
    for (style, pagination) in [("link", "linkHeader"), ("page", "page"), ("offset", "offset")] {
        let (_, device, device_path) = app.place_and_device("meter").await;
        let mut properties = vendor.readings_properties(pagination);
        properties["url"] = json!(format!("{}&style={style}", properties["url"].as_str().unwrap()));
        let id = ingress_on(&app, &vendor, &device_path, properties).await;
        until(&app, &format!("/v2/integrations/{id}"), "a first poll", |i| !i["connection"]["poll"].is_null()).await;
        let from = vendor.seen().len();
        for n in 0..7 {
            vendor.add(json!({"device": "sensor-7", "n": n}));
        }
        let telemetry = format!("/v2/telemetry?deviceId={device}&limit=100");
        until(&app, &telemetry, style, |l| records(l).len() == 7).await;
        let pages: Vec<String> = vendor.seen()[from..]
            .iter()
            .map(|s| s.uri.clone())
            .filter(|u| u.contains("page=") || u.contains("offset="))
            .collect();
        // A page number or an offset goes on until a page is empty; a link until none is given.
        let (asked, never): (&[&str], &str) = match style {
            "offset" => (&["offset=0", "offset=3", "offset=6", "offset=7"], "offset=8"),
            "page" => (&["page=1", "page=2", "page=3", "page=4"], "page=5"),
            _ => (&["page=2", "page=3"], "page=4"),
        };
        for m in asked {
            assert!(pages.iter().any(|p| p.contains(m)), "{style}: {m} asked: {pages:?}");
        }
        assert!(!pages.iter().any(|p| p.contains(never)), "{style}: {never} never asked: {pages:?}");
        assert_eq!(app.delete(&format!("/v2/integrations/{id}")).await.status, Status::NO_CONTENT);
        vendor.books.items.lock().unwrap().clear();
    }
}

/// An endpoint with an `ETag`: an unchanged answer is a 304 that stores
/// nothing; a change is fetched, and what was stored before is a duplicate.
async fn an_unchanged_answer_is_not_modified_and_stores_nothing(backend: Backend) {
    let vendor = Vendor::start(100).await;
    let app = spawn_configured(backend, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    vendor.add(json!({"id": "r1", "device": "sensor-7", "power": 1}));
    vendor.add(json!({"id": "r2", "device": "sensor-7", "power": 2}));
    let mut properties = vendor.readings_properties("none");
    properties["url"] = json!(format!("{}/v1/state", vendor.base()));
    properties["messageIdFrom"] = json!("pointer:/id");
    let id = ingress_on(&app, &vendor, &device_path, properties).await;
    let integration = format!("/v2/integrations/{id}");
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=100");
    until(&app, &telemetry, "both readings", |l| records(l).len() == 2).await;
    let unchanged =
        until(&app, &integration, "a 304", |i| i["connection"]["poll"]["lastOutcome"] == "not_modified").await;
    assert_eq!(unchanged["connection"]["state"], "connected");
    let asked = vendor.seen().into_iter().rev().find(|s| s.headers.contains_key("if-none-match")).unwrap();
    assert_eq!(asked.headers["if-none-match"], "\"v2\"");

    vendor.add(json!({"id": "r3", "device": "sensor-7", "power": 3}));
    until(&app, &telemetry, "the new reading", |l| records(l).len() == 3).await;
    let log =
        until(&app, &format!("{integration}/messages?limit=10"), "five messages", |l| records(l).len() == 5).await;
    let outcomes: Vec<String> = records(&log).iter().map(|m| m["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "duplicate").count(), 2, "{outcomes:?}");
    assert_eq!(records(&app.get(&telemetry).await.body).len(), 3, "nothing stored twice");
}

/// A 429 waits its `Retry-After` and a 503 its back-off, both within the
/// poll, the status telling of each; a 401 fails the status with the
/// vendor's words, and a new token brings it back.
async fn failures_are_retried_or_fail_the_status_with_the_vendors_words(backend: Backend) {
    let vendor = Vendor::start(100).await;
    let app = spawn_configured(backend, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    vendor.add(json!({"device": "sensor-7", "power": 1, "at": 1_700_000_000_000i64}));
    vendor.script(429, vec![("retry-after", "2".into())], "slow down");
    vendor.script(503, vec![], "");
    let mut properties = vendor.readings_properties("none");
    properties["url"] = json!(format!("{}/v1/readings", vendor.base()));
    properties["intervalSeconds"] = json!(60);
    properties["timestampPointer"] = json!("/at");
    let id = ingress_on(&app, &vendor, &device_path, properties).await;
    let integration = format!("/v2/integrations/{id}");
    let waiting = until(&app, &integration, "the 429", |i| state(i) == "reconnecting").await;
    assert_eq!(waiting["connection"]["lastError"], "HTTP 429: slow down; retrying in 2s", "{waiting:#}");
    assert_eq!(waiting["connection"]["poll"]["lastOutcome"], "retrying");
    let telemetry = format!("/v2/telemetry?deviceId={device}");
    until(&app, &telemetry, "the reading, after both retries", |l| records(l).len() == 1).await;
    let seen = vendor.seen();
    assert_eq!(seen.len(), 3, "429, 503, then the answer");
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_millis(1_950), "Retry-After: 2 honoured");
    assert!(seen[2].at.duration_since(seen[1].at) >= Duration::from_millis(750), "a back-off after the 503");
    let ok = until(&app, &integration, "connected", |i| state(i) == "connected").await;
    assert_eq!(ok["connection"]["poll"]["lastMessages"], 1);
    let history = app.get(&format!("{integration}/status-history")).await.body;
    let states: Vec<&str> = history["data"].as_array().unwrap().iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["connected", "reconnecting", "connecting"], "the retries are one change");

    // A refused token fails the status with the vendor's words; a new token brings it back.
    let refused = ingress_on(
        &app,
        &vendor,
        &device_path,
        json!({"token": "expired", "url": format!("{}/v1/readings", vendor.base())}),
    )
    .await;
    let path = format!("/v2/integrations/{refused}");
    let failed = until(&app, &path, "failed", |i| state(i) == "failed").await;
    assert_eq!(failed["connection"]["lastError"], r#"HTTP 401: {"error":"invalid_token"}"#);
    assert_eq!(failed["connection"]["poll"]["lastOutcome"], "failed");
    assert!(!failed.to_string().contains("expired"), "the token is never shown");
    assert_eq!(app.put(&path, json!({"properties": {"token": TOKEN}})).await.status, Status::OK);
    until(&app, &path, "connected with the new token", |i| state(i) == "connected").await;
}

/// `{"from", "to"}` of a day long ago, ten readings of it by the vendor.
const DAY: i64 = 86_400_000;
const LONG_AGO: i64 = 1_700_000_000_000;

fn readings_of_long_ago(vendor: &Vendor) {
    for n in 0..10 {
        let at = LONG_AGO + n * 3_600_000;
        vendor.add_at(at, json!({"device": "sensor-7", "n": n, "at": at}));
    }
}

/// An hourly HTTP_POLL integration (pages of three) on a vendor holding ten
/// readings of long ago, after its first poll: (vendor, app, device, integration id).
async fn hourly_on_long_ago(backend: Backend) -> (Vendor, crate::App, String, String) {
    let vendor = Vendor::start(3).await;
    readings_of_long_ago(&vendor);
    let app = spawn_configured(backend, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    let mut properties = vendor.readings_properties("page");
    properties["intervalSeconds"] = json!(3600);
    properties["timestampPointer"] = json!("/at");
    let id = ingress_on(&app, &vendor, &device_path, properties).await;
    until(&app, &format!("/v2/integrations/{id}"), "a first poll", |i| !i["connection"]["poll"].is_null()).await;
    (vendor, app, device, id)
}

async fn backfill(app: &crate::App, integration: &str, from: i64, to: i64) -> String {
    let started = app.post(&format!("{integration}/actions/backfill"), json!({"from": from, "to": to})).await;
    assert_eq!(started.status, Status::ACCEPTED, "{:?}", started.body);
    assert_eq!(started.body["status"], "queued");
    format!("/v2/actions/{}", started.body["id"].as_str().unwrap())
}

/// A past range is fetched in the vendor's pages and stored, with the
/// action's progress; run again, it stores nothing twice.
async fn a_backfill_fetches_a_past_range_once(backend: Backend) {
    let (_vendor, app, device, id) = hourly_on_long_ago(backend).await;
    let integration = format!("/v2/integrations/{id}");
    let view = app.get(&integration).await.body;
    assert_eq!(view["actions"], json!(["replay-unmapped", "backfill"]));
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=100");
    assert_eq!(records(&app.get(&telemetry).await.body).len(), 0, "a poll sees only what is new");

    let action = backfill(&app, &integration, LONG_AGO, LONG_AGO + DAY).await;
    let done = until(&app, &action, "the backfill", |a| a["status"] == "succeeded").await;
    assert_eq!(done["progress"]["records"], 10, "{done:#}");
    assert_eq!(done["progress"]["percent"], 100.0);
    assert_eq!(done["progress"]["pages"], 5, "four pages of three or fewer, and the empty one");
    assert_eq!(done["result"]["records"], 10);
    let stored = records(&app.get(&telemetry).await.body);
    assert_eq!(stored.len(), 10);
    assert!(stored.iter().all(|r| r["record"]["timestamp"].as_i64().unwrap() < LONG_AGO + DAY));

    let again = backfill(&app, &integration, LONG_AGO, LONG_AGO + DAY).await;
    let done = until(&app, &again, "the second backfill", |a| a["status"] == "succeeded").await;
    assert_eq!(done["progress"]["records"], 0, "nothing stored twice: {done:#}");
    assert_eq!(records(&app.get(&telemetry).await.body).len(), 10);
    let listed = app.get(&format!("/v2/actions?integrationId={id}&kind=backfill")).await.body;
    assert_eq!(records(&listed).len(), 2);
}

/// A backfill resumes after a restart at the page it was fetching; one
/// cancelled stops after its page; a disabled integration backfills nothing.
async fn a_backfill_resumes_after_a_restart_and_stops_when_cancelled(backend: Backend) {
    let (vendor, app, device, id) = hourly_on_long_ago(backend).await;
    let integration = format!("/v2/integrations/{id}");

    *vendor.books.hold.lock().unwrap() = Some("page=3".into());
    let resumed = backfill(&app, &integration, LONG_AGO, LONG_AGO + DAY).await;
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=100");
    until(&app, &telemetry, "two pages", |l| records(l).len() == 6).await;
    let running = until(&app, &resumed, "its progress", |a| a["progress"]["pages"] == 2).await;
    assert_eq!(running["status"], "running");
    let held = vendor.asked_for("page=3").await;
    let app = app.restart().await;
    vendor.books.release.notify_waiters();
    let done = until(&app, &resumed, "the backfill after the restart", |a| a["status"] == "succeeded").await;
    assert_eq!(done["progress"]["records"], 10, "{done:#}");
    let after: Vec<Seen> = vendor.seen().into_iter().filter(|s| s.at > held.at).collect();
    assert_eq!(after[0].uri, held.uri, "resumed at the page it was fetching");
    assert_eq!(records(&app.get(&telemetry).await.body).len(), 10);

    // Cancelled while a page is fetched: it stops after it.
    *vendor.books.hold.lock().unwrap() = Some("page=2".into());
    let action = backfill(&app, &integration, LONG_AGO, LONG_AGO + DAY).await;
    loop {
        if vendor.books.hold.lock().unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = app.post(&format!("{action}/cancel"), json!({})).await;
    assert_eq!(cancelled.status, Status::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let asked = vendor.seen().len();
    vendor.books.release.notify_waiters();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(vendor.seen().len(), asked, "no page after the one it was at");
    assert_eq!(app.get(&action).await.body["status"], "cancelled");
    let again = app.post(&format!("{action}/cancel"), json!({})).await;
    assert_eq!(again.status, Status::OK, "cancelling twice is no error");
    let finished = app.post(&format!("{resumed}/cancel"), json!({})).await;
    assert_eq!(finished.status, Status::CONFLICT, "a finished action is not cancelled: {:?}", finished.body);

    // Disabled: nothing would run it.
    app.put(&integration, json!({"enabled": false})).await;
    let refused =
        app.post(&format!("{integration}/actions/backfill"), json!({"from": LONG_AGO, "to": LONG_AGO + DAY})).await;
    assert_eq!(refused.status, Status::CONFLICT, "{:?}", refused.body);
    let backwards =
        app.post(&format!("{integration}/actions/backfill"), json!({"from": LONG_AGO, "to": LONG_AGO})).await;
    assert_eq!(backwards.status, Status::UNPROCESSABLE_ENTITY);
    assert_eq!(backwards.fields(), ["to"]);
}

/// A POST whose body is a template over the cursor the last answer gave,
/// with an API key header: each poll asks only for what came after.
async fn a_cursor_from_the_answer_is_the_next_polls(backend: Backend) {
    let vendor = Vendor::start(100).await;
    let app = spawn_configured(backend, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    vendor.add(json!({"device": "sensor-7", "n": 1, "at": LONG_AGO}));
    vendor.add(json!({"device": "sensor-7", "n": 2, "at": LONG_AGO + 1000}));
    let properties = json!({"url": format!("{}/v1/feed", vendor.base()), "method": "POST",
        "body": "{\"after\": \"{{ cursor }}\"}", "auth": "apiKey", "apiKeyHeader": "X-Vendor-Key",
        "apiKey": "vendor-key-1", "pagination": "none", "cursorPointer": "/cursor", "timestampPointer": "/at"});
    let id = ingress_on(&app, &vendor, &device_path, properties).await;
    let telemetry = format!("/v2/telemetry?deviceId={device}");
    until(&app, &telemetry, "the first two", |l| records(l).len() == 2).await;
    vendor.add(json!({"device": "sensor-7", "n": 3, "at": LONG_AGO + 2000}));
    until(&app, &telemetry, "the third", |l| records(l).len() == 3).await;
    let log = app.get(&format!("/v2/integrations/{id}/messages")).await.body;
    assert_eq!(records(&log).len(), 3, "nothing asked for twice: {log:#}");
    // The next poll asks after the third.
    let asked = |after: &str| vendor.books.bodies.lock().unwrap().contains(&json!({"after": after}));
    for _ in 0..500 {
        if asked("3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bodies = vendor.books.bodies.lock().unwrap().clone();
    assert_eq!(bodies[0], json!({"after": ""}), "no cursor yet");
    assert!(asked("2") && asked("3"), "{bodies:?}");
    assert_eq!(records(&app.get(&telemetry).await.body).len(), 3);
    let shown = app.get(&format!("/v2/integrations/{id}")).await.body.to_string();
    assert!(!shown.contains("vendor-key-1"), "the key is never shown");
}

/// Settings that cannot work are refused at create, naming the field.
async fn settings_that_cannot_work_are_refused(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let cases = [
        (json!({"url": "http://127.0.0.1:1/x", "auth": "bearer", "format": "records"}), "properties.token"),
        (
            json!({"url": "http://127.0.0.1:1/x", "pagination": "nextUrl", "format": "records"}),
            "properties.nextPointer",
        ),
        (
            json!({"url": "http://127.0.0.1:1/x", "itemsPointer": "data", "format": "records"}),
            "properties.itemsPointer",
        ),
        (json!({"url": "http://127.0.0.1:1/x", "body": "{}", "format": "records"}), "properties.body"),
        (json!({"url": "http://127.0.0.1:1/{{ since", "format": "records"}), "properties.url"),
        (json!({"url": "http://127.0.0.1:1/x", "headers": ["nope"], "format": "records"}), "properties.headers[0]"),
        (json!({"url": "http://127.0.0.1:1/x", "format": "json"}), "properties.externalIdFrom"),
    ];
    for (properties, field) in cases {
        let body = json!({"name": "p", "type": "HTTP_POLL", "direction": "INGRESS", "properties": properties});
        let res = app.post("/v2/integrations", body).await;
        assert_eq!(res.status, Status::UNPROCESSABLE_ENTITY, "{field}: {:?}", res.body);
        assert!(res.fields().contains(&field.to_owned()), "{field}: {:?}", res.body);
    }
    let listed = app.get("/v2/integrations").await.body;
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "nothing half-written is stored");
}

on_both_stores!(
    http_poll_passes_the_ingress_checks,
    a_burst_waits_for_the_rate_limit,
    pages_are_followed_and_a_restart_resumes_at_the_page_it_stopped,
    every_pagination_style_reaches_the_last_page,
    an_unchanged_answer_is_not_modified_and_stores_nothing,
    failures_are_retried_or_fail_the_status_with_the_vendors_words,
    settings_that_cannot_work_are_refused,
    a_cursor_from_the_answer_is_the_next_polls,
    a_backfill_fetches_a_past_range_once,
    a_backfill_resumes_after_a_restart_and_stops_when_cancelled,
);
