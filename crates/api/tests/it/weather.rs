//! WEATHER against a local server speaking Open-Meteo's API: `/v1/forecast`
//! (`current`, `hourly`, `forecast_hours`) and `/v1/archive` (`start_date`,
//! `end_date`, `hourly`), `timeformat=unixtime`, answering from the
//! project's fixtures (`tests/fixtures/open-meteo/`) with only the variables
//! asked for, and Open-Meteo's error shape (`{"error": true, "reason"}`).
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode as Status;
use serde_json::{json, Value};

use crate::ingress::{records, state, until};
use crate::receiver::{webhook_with_trigger, Receiver};
use crate::{spawn_configured, App, Backend};

const FORECAST: &str = include_str!("../fixtures/open-meteo/forecast.json");
const ARCHIVE: &str = include_str!("../fixtures/open-meteo/archive.json");
/// The archive fixture's first hour, 2026-11-01T00:00Z, and its three days.
const NOV_1: i64 = 1_793_491_200_000;
const DAY: i64 = 86_400_000;

#[derive(Default)]
struct Asked {
    /// Every request's path and query.
    seen: Mutex<Vec<(String, BTreeMap<String, String>)>>,
    /// Answers given before the real one: (status, body).
    script: Mutex<VecDeque<(u16, Value)>>,
}

struct OpenMeteo {
    url: String,
    asked: Arc<Asked>,
}

impl OpenMeteo {
    async fn start() -> OpenMeteo {
        let asked = Arc::new(Asked::default());
        let app = axum::Router::new()
            .route("/v1/forecast", axum::routing::get(|s, q| answer(s, q, "forecast")))
            .route("/v1/archive", axum::routing::get(|s, q| answer(s, q, "archive")))
            .with_state(asked.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        OpenMeteo { url, asked }
    }

    fn seen(&self, path: &str) -> Vec<BTreeMap<String, String>> {
        self.asked.seen.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, q)| q.clone()).collect()
    }
}

fn refuse(reason: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": true, "reason": reason}))).into_response()
}

/// The fixture, its series cut to the variables asked (and the archive to its dates).
async fn answer(State(asked): State<Arc<Asked>>, Query(q): Query<BTreeMap<String, String>>, which: &str) -> Response {
    asked.seen.lock().unwrap().push((which.to_owned(), q.clone()));
    if let Some((status, body)) = asked.script.lock().unwrap().pop_front() {
        let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        if status == 429 {
            response.headers_mut().insert("retry-after", "1".parse().unwrap());
        }
        return response;
    }
    for coordinate in ["latitude", "longitude"] {
        if q.get(coordinate).and_then(|v| v.parse::<f64>().ok()).is_none() {
            return refuse(&format!("Parameter '{coordinate}' is required"));
        }
    }
    if q.get("apikey").is_some_and(|k| k != "om-key-1") {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": true, "reason": "Invalid API key"})))
            .into_response();
    }
    if q.get("timeformat").map(String::as_str) != Some("unixtime") {
        return refuse("this peer answers unix time only");
    }
    let mut fixture: Value = serde_json::from_str(if which == "archive" { ARCHIVE } else { FORECAST }).unwrap();
    for block in ["current", "hourly"] {
        let wanted: Vec<&str> = q.get(block).map(|v| v.split(',').collect()).unwrap_or_default();
        let Some(Value::Object(series)) = fixture.get_mut(block) else { continue };
        if wanted.is_empty() {
            fixture.as_object_mut().unwrap().remove(block);
            fixture.as_object_mut().unwrap().remove(&format!("{block}_units"));
            continue;
        }
        series.retain(|k, _| k == "time" || k == "interval" || wanted.contains(&k.as_str()));
    }
    if which == "archive" {
        let (Some(start), Some(end)) = (q.get("start_date"), q.get("end_date")) else {
            return refuse("Parameter 'start_date' and 'end_date' are required");
        };
        let (Some(from), Some(to)) = (epoch_day(start), epoch_day(end)) else { return refuse("Invalid date") };
        let (from, to) = (from * 86_400, (to + 1) * 86_400);
        let hourly = fixture["hourly"].as_object_mut().unwrap();
        let keep: Vec<bool> =
            hourly["time"].as_array().unwrap().iter().map(|t| (from..to).contains(&t.as_i64().unwrap())).collect();
        for series in hourly.values_mut() {
            let kept: Vec<Value> =
                series.as_array().unwrap().iter().zip(&keep).filter(|(_, k)| **k).map(|(v, _)| v.clone()).collect();
            *series = Value::Array(kept);
        }
    }
    axum::Json(fixture).into_response()
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (the proleptic Gregorian calendar).
fn epoch_day(date: &str) -> Option<i64> {
    let mut parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Every variable a weather integration asks for unless told otherwise.
const ALL: &str = "temperature_2m,relative_humidity_2m,wind_speed_10m,cloud_cover,precipitation,shortwave_radiation";

async fn weather(app: &App, peer: &OpenMeteo, place: &str, extra: Value) -> String {
    let mut properties = json!({"place": format!("/places/{place}"), "apiUrl": peer.url, "archiveUrl": peer.url,
                                "intervalSeconds": 60});
    properties.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let body = json!({"name": "weather", "type": "WEATHER", "direction": "INGRESS", "properties": properties});
    let created = app.post("/v2/integrations", body).await;
    assert_eq!(created.status, Status::CREATED, "{:?}", created.body);
    format!("/v2/integrations/{}", created.body["id"].as_str().unwrap())
}

/// The weather device the first poll made in the Place.
async fn weather_device(app: &App, place: &str) -> String {
    let devices = app.get(&format!("/v2/devices?place={place}")).await.body;
    let found = records(&devices).into_iter().find(|d| d["deviceType"] == "weather").expect("a weather device");
    found["id"].as_str().unwrap().to_owned()
}

/// A poll stores each variable's current value and the hourly forecast
/// beside it, on a `weather` device made in the Place, delivered by a
/// webhook; a backfill stores the archive's hours, and only once.
async fn observations_and_forecasts_land_on_a_weather_device(backend: Backend) {
    let peer = OpenMeteo::start().await;
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    let located = json!({"location": {"latitude": 52.52, "longitude": 13.42, "timezone": "Europe/Berlin"}});
    let put = app.put(&format!("/v2/places/{}", s.place), located).await;
    assert_eq!(put.status, Status::OK, "{:?}", put.body);
    assert_eq!(put.body["location"]["timezone"], "Europe/Berlin");
    // Open-Meteo asks to slow down, then fails once: the first poll waits and tries again.
    let busy = json!({"error": true, "reason": "Too many concurrent requests"});
    peer.asked.script.lock().unwrap().extend([(429, busy), (503, json!({"error": true, "reason": "upstream"}))]);
    let integration = weather(&app, &peer, &s.place, json!({})).await;
    let polled =
        until(&app, &integration, "a first poll", |i| i["connection"]["poll"]["lastOutcome"] == "polled").await;
    assert_eq!(state(&polled), "connected");
    assert_eq!(peer.seen("forecast").len(), 3, "429, 503, then the answer");
    let history = app.get(&format!("{integration}/status-history")).await.body;
    let errors: Vec<&str> = history["data"].as_array().unwrap().iter().filter_map(|c| c["error"].as_str()).collect();
    assert!(
        errors.iter().any(|e| e.starts_with("HTTP 429: Too many concurrent requests; retrying in 1s")),
        "{errors:?}"
    );
    assert_eq!(polled["actions"], json!(["replay-unmapped", "backfill"]));

    let asked = &peer.seen("forecast")[2];
    assert_eq!((asked["latitude"].as_str(), asked["longitude"].as_str()), ("52.52", "13.42"));
    assert_eq!(asked["current"], ALL);
    assert_eq!(asked["hourly"], ALL);
    assert_eq!(asked["forecast_hours"], "24");
    assert!(!asked.contains_key("apikey"), "the free API takes no key");

    let device = weather_device(&app, &s.place).await;
    let telemetry = format!("/v2/telemetry?deviceId={device}&limit=200");
    let stored = until(&app, &telemetry, "6 observations and 144 forecasts", |l| records(l).len() == 150).await;
    let by = |property: &str| -> Vec<Value> {
        records(&stored)
            .into_iter()
            .filter(|r| r["record"]["property"] == property)
            .map(|r| r["record"].clone())
            .collect()
    };
    let now = by("temperature_2m");
    assert_eq!(now.len(), 1);
    let fixture: Value = serde_json::from_str(FORECAST).unwrap();
    assert_eq!(now[0]["payload"], fixture["current"]["temperature_2m"], "{:#}", now[0]);
    assert_eq!(now[0]["unit"], "°C");
    assert_eq!(now[0]["timestamp"], fixture["current"]["time"].as_i64().unwrap() * 1000, "current.time");
    let forecast = by("temperature_2m_forecast");
    assert_eq!(forecast.len(), 24);
    assert!(forecast.iter().all(|r| r["tags"]["issuedAt"].as_str().is_some_and(|t| t.ends_with(":00:00.000Z"))));
    assert_eq!(by("shortwave_radiation")[0]["unit"], "W/m²");
    let delivered = rx.wait_for(150).await;
    assert!(delivered.iter().all(|r| r.json()["deviceId"] == device.as_str()));

    // A backfill of three past days reads the archive.
    let started =
        app.post(&format!("{integration}/actions/backfill"), json!({"from": NOV_1, "to": NOV_1 + 3 * DAY})).await;
    assert_eq!(started.status, Status::ACCEPTED, "{:?}", started.body);
    let action = format!("/v2/actions/{}", started.body["id"].as_str().unwrap());
    let done = until(&app, &action, "the backfill", |a| a["status"] == "succeeded").await;
    assert_eq!(done["progress"]["records"], 72 * 6, "{done:#}");
    let archive = &peer.seen("archive")[0];
    assert_eq!((archive["start_date"].as_str(), archive["end_date"].as_str()), ("2026-11-01", "2026-11-03"));
    let past = app
        .get(&format!("/v2/telemetry?deviceId={device}&property=temperature_2m&limit=200&to={}", NOV_1 + 3 * DAY))
        .await;
    assert_eq!(records(&past.body).len(), 72);
    let again =
        app.post(&format!("{integration}/actions/backfill"), json!({"from": NOV_1, "to": NOV_1 + 3 * DAY})).await;
    let action = format!("/v2/actions/{}", again.body["id"].as_str().unwrap());
    let done = until(&app, &action, "the second backfill", |a| a["status"] == "succeeded").await;
    assert_eq!(done["progress"]["records"], 0, "nothing stored twice: {done:#}");
}

/// A Place with no location fails the status with what to do; locations
/// are validated; with one, the integration polls (the variables asked only).
async fn a_place_without_a_location_fails_the_status_with_what_to_do(backend: Backend) {
    let peer = OpenMeteo::start().await;
    let app = spawn_configured(backend, |_| {}).await;
    let (place, _, _) = app.place_and_device("meter").await;
    let integration =
        weather(&app, &peer, &place, json!({"apiKey": "om-key-1", "variables": ["temperature_2m"]})).await;
    let failed = until(&app, &integration, "failed", |i| state(i) == "failed").await;
    let error = failed["connection"]["lastError"].as_str().unwrap();
    assert!(error.contains("has no location: set its latitude and longitude"), "{error}");
    assert!(peer.seen("forecast").is_empty(), "nothing asked without a location");

    let bad = json!({"location": {"latitude": 100, "longitude": 13.4, "timezone": "Mars/Olympus_Mons"}});
    let refused = app.put(&format!("/v2/places/{place}"), bad).await;
    assert_eq!(refused.status, Status::UNPROCESSABLE_ENTITY, "{:?}", refused.body);
    assert_eq!(refused.fields(), ["location.latitude", "location.timezone"]);
    let ok =
        app.put(&format!("/v2/places/{place}"), json!({"location": {"latitude": -33.87, "longitude": 151.21}})).await;
    assert_eq!(ok.status, Status::OK, "{:?}", ok.body);
    // Open-Meteo refuses once; the next poll (the settings changed: at once) asks again.
    peer.asked.script.lock().unwrap().push_back((
        400,
        json!({"error": true, "reason": "Cannot initialize WeatherVariable from invalid String value"}),
    ));
    assert_eq!(app.put(&integration, json!({"properties": {"forecastHours": 0}})).await.status, Status::OK);
    let refused = until(&app, &integration, "refused", |i| {
        i["connection"]["lastError"].as_str().is_some_and(|e| e.starts_with("HTTP 400"))
    })
    .await;
    assert_eq!(
        refused["connection"]["lastError"],
        "HTTP 400: Cannot initialize WeatherVariable from invalid String value"
    );
    assert_eq!(
        app.put(&integration, json!({"properties": {"forecastHours": 0, "variables": ["temperature_2m"]}}))
            .await
            .status,
        Status::OK
    );
    until(&app, &integration, "connected", |i| state(i) == "connected").await;
    let asked = peer.seen("forecast").pop().unwrap();
    assert_eq!((asked["latitude"].as_str(), asked["current"].as_str()), ("-33.87", "temperature_2m"));
    assert!(!asked.contains_key("hourly"), "no forecast asked for");
    assert_eq!(asked["apikey"], "om-key-1");
    let device = weather_device(&app, &place).await;
    let stored =
        until(&app, &format!("/v2/telemetry?deviceId={device}"), "the observation", |l| records(l).len() == 1).await;
    assert_eq!(stored["data"][0]["record"]["property"], "temperature_2m");
    let shown = app.get(&integration).await.body;
    assert!(!shown.to_string().contains("om-key-1"), "the key is never shown");

    // The same values again are nothing new; a key the instance refuses fails the status with its reason.
    let asked_before = peer.seen("forecast").len();
    let change = json!({"properties": {"forecastHours": 0, "variables": ["temperature_2m"], "timeoutSeconds": 20}});
    assert_eq!(app.put(&integration, change).await.status, Status::OK);
    until(&app, &integration, "polled again", |i| {
        i["connection"]["poll"]["lastMessages"] == 1 && peer.seen("forecast").len() > asked_before
    })
    .await;
    assert_eq!(records(&app.get(&format!("/v2/telemetry?deviceId={device}")).await.body).len(), 1, "nothing twice");
    assert_eq!(app.put(&integration, json!({"properties": {"apiKey": "om-key-2"}})).await.status, Status::OK);
    let refused = until(&app, &integration, "refused", |i| state(i) == "failed").await;
    assert_eq!(refused["connection"]["lastError"], "HTTP 401: Invalid API key");
}

on_both_stores!(
    observations_and_forecasts_land_on_a_weather_device,
    a_place_without_a_location_fails_the_status_with_what_to_do,
);
