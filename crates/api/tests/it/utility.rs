//! UTILITY_DATA against local servers speaking its two provider shapes:
//!
//! - a Green Button Data Custodian: `Batch/Subscription/{id}` answering the
//!   project's ESPI feed (`tests/fixtures/green-button/feed.xml`: two usage
//!   points, three ReadingTypes, delivered and received, a power of ten, costs
//!   and a quality) with its IntervalBlocks cut to `published-min` /
//!   `published-max`, behind an OAuth 2 bearer token it expires, and its token
//!   endpoint (the refresh-token grant, rotating the refresh token);
//! - a JSON intervals API in the UtilityAPI style (`/intervals?meters=&start=&end=`,
//!   pages by a `next` URL) over hourly readings it makes up.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode as Status;
use serde_json::{json, Value};

use crate::ingress::{records, state, until};
use crate::{spawn_configured, App, Backend};

const FEED: &str = include_str!("../fixtures/green-button/feed.xml");
/// 2026-11-01T00:00Z: the day the feed's blocks cover (published the next morning).
const NOV_1: i64 = 1_793_491_200_000;
const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

#[derive(Default)]
struct Custodian {
    /// The access token it takes now, and the refresh token it would renew.
    access: Mutex<String>,
    refresh: Mutex<String>,
    /// Refresh grants it was sent: the form's fields.
    grants: Mutex<Vec<BTreeMap<String, String>>>,
    /// The query of every feed request, with the token it carried.
    asked: Mutex<Vec<(BTreeMap<String, String>, String)>>,
}

struct GreenButton {
    url: String,
    custodian: Arc<Custodian>,
}

impl GreenButton {
    async fn start() -> GreenButton {
        let custodian = Arc::new(Custodian::default());
        *custodian.access.lock().unwrap() = "access-1".into();
        *custodian.refresh.lock().unwrap() = "refresh-1".into();
        let app = axum::Router::new()
            .route("/espi/1_1/resource/Batch/Subscription/{id}", axum::routing::get(feed))
            .route("/oauth/token", axum::routing::post(token))
            .with_state(custodian.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        GreenButton { url, custodian }
    }

    fn properties(&self, access: &str, refresh: &str) -> Value {
        json!({"provider": "greenButton", "apiUrl": format!("{}/espi/1_1/resource", self.url), "subscriptionId": "5",
               "accessToken": access, "refreshToken": refresh, "tokenUrl": format!("{}/oauth/token", self.url),
               "clientId": "switchyard", "clientSecret": "client-secret-1", "intervalSeconds": 3600,
               "rateLimitPerSecond": 1000})
    }
}

fn time_of(rfc3339: &str) -> Option<i64> {
    switchyard_connectors::decode::epoch_ms(&json!(rfc3339))
}

/// The feed, its IntervalBlocks those published in [published-min, published-max).
async fn feed(
    State(c): State<Arc<Custodian>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    c.asked.lock().unwrap().push((q.clone(), bearer.clone()));
    if bearer != format!("Bearer {}", c.access.lock().unwrap()) {
        return (StatusCode::UNAUTHORIZED, "invalid_token").into_response();
    }
    if id != "5" {
        return (StatusCode::NOT_FOUND, "no such subscription").into_response();
    }
    let range = (q.get("published-min").and_then(|t| time_of(t)), q.get("published-max").and_then(|t| time_of(t)));
    let (Some(min), Some(max)) = range else {
        return (StatusCode::BAD_REQUEST, "published-min and published-max are required here").into_response();
    };
    let (head, rest) = FEED.split_once("  <entry>").unwrap();
    let mut out = head.to_owned();
    for entry in rest.split("  <entry>") {
        let body = entry.trim_end_matches("</feed>\n");
        let published = body.split("<published>").nth(1).and_then(|p| p.split('<').next()).and_then(time_of).unwrap();
        if !body.contains("IntervalBlock/") || (min..max).contains(&published) {
            out.push_str("  <entry>");
            out.push_str(body);
        }
    }
    out.push_str("</feed>\n");
    ([("content-type", "application/atom+xml")], out).into_response()
}

/// The refresh-token grant: a new access token and a new refresh token.
async fn token(State(c): State<Arc<Custodian>>, axum::Form(form): axum::Form<BTreeMap<String, String>>) -> Response {
    c.grants.lock().unwrap().push(form.clone());
    let good = form.get("grant_type").map(String::as_str) == Some("refresh_token")
        && form.get("refresh_token") == Some(&c.refresh.lock().unwrap().clone())
        && form.get("client_secret").map(String::as_str) == Some("client-secret-1");
    if !good {
        let body = json!({"error": "invalid_grant", "error_description": "The refresh token is invalid or expired."});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let n = c.grants.lock().unwrap().len();
    let (access, refresh) = (format!("access-{}", n + 1), format!("refresh-{}", n + 1));
    *c.access.lock().unwrap() = access.clone();
    *c.refresh.lock().unwrap() = refresh.clone();
    axum::Json(json!({"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

async fn utility(app: &App, properties: Value) -> String {
    utility_enabled(app, properties, true).await
}

async fn utility_enabled(app: &App, properties: Value, enabled: bool) -> String {
    let body = json!({"name": "utility", "type": "UTILITY_DATA", "direction": "INGRESS", "enabled": enabled,
                      "properties": properties});
    let created = app.post("/v2/integrations", body).await;
    assert_eq!(created.status, Status::CREATED, "{:?}", created.body);
    format!("/v2/integrations/{}", created.body["id"].as_str().unwrap())
}

async fn map(app: &App, integration: &str, external: &str, device_path: &str) {
    let id = integration.rsplit('/').next().unwrap();
    let m = json!({"integrationId": id, "externalId": external, "resourcePath": device_path});
    assert_eq!(app.post("/v2/integrations/resource-mappings", m).await.status, Status::CREATED);
}

async fn backfill_done(app: &App, integration: &str, from: i64, to: i64) -> Value {
    let started = app.post(&format!("{integration}/actions/backfill"), json!({"from": from, "to": to})).await;
    assert_eq!(started.status, Status::ACCEPTED, "{:?}", started.body);
    let action = format!("/v2/actions/{}", started.body["id"].as_str().unwrap());
    until(app, &action, "the backfill", |a| a["status"] == "succeeded" || a["status"] == "failed").await
}

fn by_property(list: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in records(list) {
        out.entry(r["record"]["property"].as_str().unwrap().to_owned()).or_default().push(r["record"].clone());
    }
    out
}

/// The feed's usage points become meters (one mapped, one made in the
/// Place), each interval records scaled by its ReadingType, delivered and
/// received apart, with its cost; an expired token is renewed once with the
/// refresh token and the renewed tokens are kept (encrypted) across a
/// restart; a refused refresh token fails the status with the custodian's words.
async fn green_button_feeds_become_meter_readings(backend: Backend) {
    let custodian = GreenButton::start().await;
    let app = spawn_configured(backend, |_| {}).await;
    let (place, meter, meter_path) = app.place_and_device("meter").await;
    let mut properties = custodian.properties("access-0", "refresh-1");
    properties["place"] = json!(format!("/places/{place}"));
    let integration = utility(&app, properties).await;
    map(&app, &integration, "UP-1", &meter_path).await;
    let polled =
        until(&app, &integration, "a first poll", |i| i["connection"]["poll"]["lastOutcome"] == "polled").await;
    assert_eq!(state(&polled), "connected", "{polled:#}");
    let grants = custodian.custodian.grants.lock().unwrap().clone();
    assert_eq!(grants.len(), 1, "the expired token renewed once");
    assert_eq!(grants[0]["refresh_token"], "refresh-1");
    assert_eq!(grants[0]["client_id"], "switchyard");
    let asked = custodian.custodian.asked.lock().unwrap().clone();
    assert_eq!(asked.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(), ["Bearer access-0", "Bearer access-2"]);
    assert!(asked[1].0.contains_key("published-min") && asked[1].0.contains_key("published-max"));

    // Nothing was published in the first poll's hour; the day of the feed is backfilled by its publication.
    let done = backfill_done(&app, &integration, NOV_1 + DAY, NOV_1 + 2 * DAY).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["progress"]["records"], 24 * 4, "UP-1: delivered, its cost, received; UP-2: delivered");
    let mine = by_property(&app.get(&format!("/v2/telemetry?deviceId={meter}&limit=200")).await.body);
    assert_eq!(mine.keys().collect::<Vec<_>>(), ["cost_delivered", "energy_delivered", "energy_received"]);
    let delivered = &mine["energy_delivered"];
    assert_eq!(delivered.len(), 24);
    let first = delivered.iter().find(|r| r["timestamp"] == NOV_1).unwrap();
    assert_eq!((first["payload"].as_f64(), first["unit"].as_str()), (Some(800.0), Some("Wh")));
    assert_eq!(first["tags"]["intervalSeconds"], "3600");
    let cost = mine["cost_delivered"].iter().find(|r| r["timestamp"] == NOV_1).unwrap();
    assert_eq!(cost["payload"].as_f64(), Some(0.12), "800 × 15 hundred-thousandths");
    let flagged = delivered.iter().find(|r| r["timestamp"] == NOV_1 + 5 * HOUR).unwrap();
    assert_eq!(flagged["tags"]["quality"], "19");
    // UP-2 had no mapping: a meter device was made for it in the Place, and its kWh-scaled values are Wh.
    let devices = records(&app.get(&format!("/v2/devices?place={place}")).await.body);
    let made = devices.iter().find(|d| d["name"] == "UP-2").expect("a device for UP-2");
    assert_eq!(made["deviceType"], "meter");
    let theirs =
        by_property(&app.get(&format!("/v2/telemetry?deviceId={}&limit=200", made["id"].as_str().unwrap())).await.body);
    let first = theirs["energy_delivered"].iter().find(|r| r["timestamp"] == NOV_1).unwrap();
    assert_eq!(first["payload"].as_f64(), Some(2000.0), "powerOfTenMultiplier 3");

    // Again: nothing twice. And the renewed tokens are kept: a restart renews nothing.
    let again = backfill_done(&app, &integration, NOV_1 + DAY, NOV_1 + 2 * DAY).await;
    assert_eq!(again["progress"]["records"], 0, "{again:#}");
    let app = app.restart().await;
    let restarted = backfill_done(&app, &integration, NOV_1 + DAY, NOV_1 + 2 * DAY).await;
    assert_eq!(restarted["status"], "succeeded");
    assert_eq!(custodian.custodian.grants.lock().unwrap().len(), 1, "the kept token was used after the restart");
    let last = custodian.custodian.asked.lock().unwrap().last().unwrap().1.clone();
    assert_eq!(last, "Bearer access-2");
    let shown = app.get(&integration).await.body.to_string();
    assert!(!shown.contains("access-") && !shown.contains("refresh-") && !shown.contains("client-secret"), "{shown}");

    // A refresh token the custodian refuses fails the status with its words.
    let refused = utility(&app, custodian.properties("access-0", "refresh-0")).await;
    let failed = until(&app, &refused, "failed", |i| state(i) == "failed").await;
    assert_eq!(
        failed["connection"]["lastError"],
        "the token endpoint refused the refresh token (400): invalid_grant: The refresh token is invalid or expired."
    );
}

/// The kept tokens are encrypted at rest, like every secret.
async fn renewed_tokens_are_encrypted_at_rest(backend: Backend) {
    let custodian = GreenButton::start().await;
    let app = spawn_configured(backend, |_| {}).await;
    let integration = utility(&app, custodian.properties("access-0", "refresh-1")).await;
    until(&app, &integration, "a first poll", |i| i["connection"]["poll"]["lastOutcome"] == "polled").await;
    let org = app.org.id.clone();
    let id = switchyard_core::IntegrationId::parse(integration.rsplit('/').next().unwrap()).unwrap();
    let sealed = app.store.get_progress(&org, &id, "secret:oauth").await.unwrap().expect("the renewed tokens are kept");
    assert!(!sealed.contains("access-2") && !sealed.contains("refresh-2"), "sealed: {sealed}");
    let opened = app.store.get_kept_secret(&org, &id, "oauth").await.unwrap().unwrap();
    assert!(opened.expose().contains("access-2") && opened.expose().contains("refresh-2"));
}

/// Hourly readings for each meter from `from` to `to`, as the intervals API holds them.
#[derive(Clone)]
struct Readings {
    meters: Vec<String>,
    from: i64,
    to: i64,
    page_size: usize,
    asked: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    /// Statuses answered before the real answers (with `Retry-After: 1`).
    script: Arc<Mutex<std::collections::VecDeque<u16>>>,
    /// A request for this page waits until `release` (once).
    hold: Arc<Mutex<Option<usize>>>,
    release: Arc<tokio::sync::Notify>,
}

fn reading_value(meter: usize, at: i64) -> f64 {
    ((at / HOUR) % 24) as f64 * 0.25 + meter as f64
}

async fn intervals(
    State(r): State<Readings>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    r.asked.lock().unwrap().push(q.clone());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer uapi-token") {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "Invalid token"}))).into_response();
    }
    if let Some(status) = r.script.lock().unwrap().pop_front() {
        return (StatusCode::from_u16(status).unwrap(), [("retry-after", "1")], "try later").into_response();
    }
    let (Some(start), Some(end)) = (q.get("start").and_then(|t| time_of(t)), q.get("end").and_then(|t| time_of(t)))
    else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "start and end are required"}))).into_response();
    };
    let wanted: Vec<&str> = q.get("meters").map(|m| m.split(',').collect()).unwrap_or_default();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let held = *r.hold.lock().unwrap();
    if held == Some(page) {
        *r.hold.lock().unwrap() = None;
        r.release.notified().await;
    }
    let mut all = Vec::new();
    for (i, meter) in r.meters.iter().enumerate().filter(|(_, m)| wanted.contains(&m.as_str())) {
        let mut at = r.from.max(start - start.rem_euclid(HOUR));
        while at < r.to.min(end) {
            if at >= start {
                all.push((meter.clone(), at, reading_value(i, at)));
            }
            at += HOUR;
        }
    }
    let chunk: Vec<_> = all.iter().skip(page * r.page_size).take(r.page_size).collect();
    let mut blocks: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (meter, at, value) in &chunk {
        let (s, e) = (switchyard_connectors::shared::rfc3339(*at), switchyard_connectors::shared::rfc3339(at + HOUR));
        blocks.entry(meter.as_str()).or_default().push(json!({"start": s, "end": e, "kwh": value,
            "datapoints": [{"type": "kwh", "unit": "kwh", "value": value}, {"type": "kwh_generation", "unit": "kwh", "value": 0.5}]}));
    }
    let intervals: Vec<Value> = blocks.into_iter().map(|(m, rs)| json!({"meter_uid": m, "readings": rs})).collect();
    let mut next = Value::Null;
    if (page + 1) * r.page_size < all.len() {
        let host = headers["host"].to_str().unwrap();
        let mut link = reqwest::Url::parse(&format!("http://{host}/api/v2/intervals")).unwrap();
        link.query_pairs_mut()
            .extend_pairs(q.iter().filter(|(k, _)| *k != "page"))
            .append_pair("page", &(page + 1).to_string());
        next = json!(link.to_string());
    }
    axum::Json(json!({"intervals": intervals, "next": next})).into_response()
}

async fn intervals_api(readings: Readings) -> String {
    let app = axum::Router::new().route("/api/v2/intervals", axum::routing::get(intervals)).with_state(readings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v2", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A poll asks again for the hours it looks back over, in pages (a 429
/// and a 503 on the way waited out), and stores each reading once, routed
/// to a webhook; a restart while a page is fetched resumes at that page; a
/// backfill of an older range adds its days.
async fn an_intervals_api_is_polled_in_pages_and_backfilled(backend: Backend) {
    let now = switchyard_core::now_ms() / HOUR * HOUR;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let readings = Readings {
        meters: vec!["m-1".into(), "m-2".into()],
        from: now - 10 * DAY,
        to: now,
        page_size: 40,
        asked: asked.clone(),
        script: Arc::new(Mutex::new([429, 503].into())),
        hold: Arc::new(Mutex::new(Some(1))),
        release: Arc::default(),
    };
    let (hold, release) = (readings.hold.clone(), readings.release.clone());
    let url = intervals_api(readings).await;
    let app = spawn_configured(backend, |_| {}).await;
    let rx = crate::receiver::Receiver::start(vec![]).await;
    let trigger = json!({"kinds": ["value"], "objects": ["energy_received"]});
    crate::receiver::webhook_with_trigger(&app, &rx.url, json!({}), trigger).await;
    let (_, meter, meter_path) = app.place_and_device("meter").await;
    let (_, other, other_path) = app.place_and_device("meter").await;
    // Mapped before it is enabled: the first poll finds readings at once.
    let properties = json!({"provider": "intervals", "apiUrl": url, "meters": ["m-1", "m-2"],
                            "accessToken": "uapi-token", "lookbackHours": 24, "rateLimitPerSecond": 1000});
    let integration = utility_enabled(&app, properties, false).await;
    map(&app, &integration, "m-1", &meter_path).await;
    map(&app, &integration, "m-2", &other_path).await;
    assert_eq!(app.put(&integration, json!({"enabled": true})).await.status, Status::OK);
    // The second page is held: the node restarts while it is fetched, and the poll resumes there.
    let held_at = loop {
        if hold.lock().unwrap().is_none() {
            break asked.lock().unwrap().len();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let page_two = asked.lock().unwrap()[held_at - 1].clone();
    assert_eq!(page_two["page"], "1");
    let app = app.restart().await;
    release.notify_waiters();
    let polled =
        until(&app, &integration, "a first poll", |i| i["connection"]["poll"]["lastOutcome"] == "polled").await;
    let after: Vec<BTreeMap<String, String>> = asked.lock().unwrap()[held_at..].to_vec();
    assert_eq!(after[0], page_two, "resumed at the page it was fetching, of the same window");
    let first: Vec<bool> = asked.lock().unwrap()[..3].iter().map(|q| q.contains_key("page")).collect();
    assert_eq!(first, [false, false, false], "429, 503, then the first page");
    assert!(polled["connection"]["poll"]["lastMessages"].as_u64().unwrap() >= 1, "the rest of the window: {polled:#}");
    let mine =
        until(&app, &format!("/v2/telemetry?deviceId={meter}&property=energy_delivered&limit=200"), "a day", |l| {
            records(l).len() >= 24
        })
        .await;
    let got = records(&mine);
    assert!(got.len() <= 26, "the look-back and the first window: {}", got.len());
    let hour = got.iter().find(|r| r["record"]["timestamp"].as_i64().unwrap() == now - 2 * HOUR).unwrap();
    assert_eq!(hour["record"]["payload"].as_f64(), Some(reading_value(0, now - 2 * HOUR)));
    assert_eq!(hour["record"]["unit"], "kWh");
    let generated = app.get(&format!("/v2/telemetry?deviceId={other}&property=energy_received&limit=1")).await.body;
    assert_eq!(records(&generated).len(), 1, "generation is received energy");
    let received = |device: &str| format!("/v2/telemetry?deviceId={device}&property=energy_received&limit=200");
    let n =
        records(&app.get(&received(&meter)).await.body).len() + records(&app.get(&received(&other)).await.body).len();
    let delivered = rx.wait_for(n).await;
    assert!(delivered.iter().all(|r| r.json()["property"] == "energy_received"), "routed by the trigger's objects");

    let done = backfill_done(&app, &integration, now - 10 * DAY, now - 8 * DAY).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["progress"]["records"], 2 * 48 * 2, "two days of two meters, delivered and received");
    let again = backfill_done(&app, &integration, now - 10 * DAY, now - 8 * DAY).await;
    assert_eq!(again["progress"]["records"], 0);
    let wrong =
        utility(&app, json!({"provider": "intervals", "apiUrl": url, "meters": ["m-1"], "accessToken": "nope"})).await;
    let failed = until(&app, &wrong, "failed", |i| state(i) == "failed").await;
    assert_eq!(failed["connection"]["lastError"], r#"HTTP 401: {"error":"Invalid token"}"#);
}

/// What cannot work is refused at create, naming the field.
async fn settings_that_cannot_work_are_refused(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let cases = [
        (
            json!({"provider": "greenButton", "apiUrl": "https://u.example/espi", "accessToken": "t"}),
            "properties.subscriptionId",
        ),
        (
            json!({"provider": "greenButton", "apiUrl": "https://u.example/espi", "accessToken": "t", "subscriptionId": "5",
                   "refreshToken": "r"}),
            "properties.tokenUrl",
        ),
        (json!({"provider": "intervals", "apiUrl": "https://u.example/api", "accessToken": "t"}), "properties.meters"),
        (
            json!({"provider": "intervals", "apiUrl": "https://u.example/api", "meters": ["m"]}),
            "properties.accessToken",
        ),
        (json!({"provider": "mail", "apiUrl": "https://u.example/api", "accessToken": "t"}), "properties.provider"),
    ];
    for (properties, field) in cases {
        let body = json!({"name": "u", "type": "UTILITY_DATA", "direction": "INGRESS", "properties": properties});
        let res = app.post("/v2/integrations", body).await;
        assert_eq!(res.status, Status::UNPROCESSABLE_ENTITY, "{field}: {:?}", res.body);
        assert!(res.fields().contains(&field.to_owned()), "{field}: {:?}", res.body);
    }
}

on_both_stores!(
    green_button_feeds_become_meter_readings,
    renewed_tokens_are_encrypted_at_rest,
    an_intervals_api_is_polled_in_pages_and_backfilled,
    settings_that_cannot_work_are_refused,
);
