//! One request to a utility: a Green Button subscription's feed for a
//! published range (with the bearer token, renewed once on a 401), or a
//! page of a JSON intervals API; the intervals become records.
use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use sha2::Digest;
use switchyard_core::{now_ms, InboundMessage, Integration, Secret};
use tokio::sync::Mutex;

use super::espi::{self, Reading};
use crate::decode::{epoch_ms, MAX_RECORDS};
use crate::egress::{BuildError, EgressContext};
use crate::http::HttpClient;
use crate::ingress::IngressSink;
use crate::poll::{Ask, Fetched, Page, PollError, Source};
use crate::shared::{rfc3339, Settings};

/// The most of one answer read (a month of hourly readings of many meters).
const ANSWER_MAX: usize = 64 << 20;
/// Where the renewed tokens are kept (encrypted).
const KEPT: &str = "oauth";

#[derive(Debug)]
enum Provider {
    GreenButton { subscription: String, refresh: Option<Refresh> },
    Intervals { meters: Vec<String>, lookback: Duration },
}

#[derive(Debug)]
struct Refresh {
    token: Secret,
    url: String,
    client_id: Option<String>,
    client_secret: Option<Secret>,
}

pub struct UtilityConfig {
    provider: Provider,
    api_url: String,
    access_token: Secret,
    timeout: Duration,
    pub interval: Duration,
}

impl UtilityConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let provider = match s.required("provider")? {
            "greenButton" => Provider::GreenButton {
                subscription: s.required("subscriptionId")?.trim().to_owned(),
                refresh: match s.secret("refreshToken")? {
                    Some(token) => Some(Refresh {
                        token,
                        url: s.required("tokenUrl")?.to_owned(),
                        client_id: s.text("clientId")?.map(str::to_owned),
                        client_secret: s.secret("clientSecret")?,
                    }),
                    None => None,
                },
            },
            _ => Provider::Intervals {
                meters: s.strings("meters")?,
                lookback: Duration::from_secs_f64(s.number("lookbackHours")?.unwrap_or(72.0) * 3600.0),
            },
        };
        Ok(Self {
            provider,
            api_url: s.required("apiUrl")?.trim_end_matches('/').to_owned(),
            access_token: s.need_secret("accessToken")?,
            timeout: Duration::from_secs_f64(s.number("timeoutSeconds")?.unwrap_or(60.0)),
            interval: Duration::from_secs_f64(s.number("intervalSeconds")?.unwrap_or(3600.0)),
        })
    }
}

/// The tokens in use: the configured ones, or those a renewal gave (kept
/// with a digest of the refresh token they came from, so setting a new one
/// in the integration replaces them).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Tokens {
    from: String,
    access: String,
    refresh: String,
}

pub struct UtilitySource {
    config: UtilityConfig,
    http: HttpClient,
    tokens: Mutex<Option<Tokens>>,
}

fn digest(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

impl UtilitySource {
    pub fn new(config: UtilityConfig, ctx: &EgressContext) -> Self {
        Self { config, http: ctx.http.clone(), tokens: Mutex::new(None) }
    }

    /// The access token to send: a renewed one kept for the configured refresh token, else the configured one.
    async fn access(&self, sink: &dyn IngressSink) -> String {
        let mut tokens = self.tokens.lock().await;
        if tokens.is_none() {
            if let Provider::GreenButton { refresh: Some(r), .. } = &self.config.provider {
                let kept = sink.kept_secret(KEPT).await.and_then(|s| serde_json::from_str::<Tokens>(s.expose()).ok());
                *tokens = kept.filter(|t| t.from == digest(r.token.expose()));
            }
        }
        tokens.as_ref().map_or_else(|| self.config.access_token.expose().to_owned(), |t| t.access.clone())
    }

    /// Renews the access token with the refresh token, and keeps both.
    async fn renew(&self, sink: &dyn IngressSink, r: &Refresh) -> Result<(), PollError> {
        let mut tokens = self.tokens.lock().await;
        let refresh = tokens.as_ref().map_or_else(|| r.token.expose().to_owned(), |t| t.refresh.clone());
        let mut fields = vec![("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
        if let Some(id) = &r.client_id {
            fields.push(("client_id", id));
        }
        if let Some(secret) = &r.client_secret {
            fields.push(("client_secret", secret.expose()));
        }
        let form = crate::http::form(&fields);
        let headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")];
        let answer =
            self.http.post(&r.url, &headers, form, self.config.timeout).await.map_err(|e| PollError::from_http(&e))?;
        let status = answer.status();
        let body: Value = serde_json::from_slice(&answer.bytes(1 << 16).await).unwrap_or(Value::Null);
        let said = || {
            let e = body["error"].as_str().unwrap_or("no error given");
            body["error_description"].as_str().map_or_else(|| e.to_owned(), |d| format!("{e}: {d}"))
        };
        if !(200..300).contains(&status) {
            if matches!(status, 429 | 500..=599) {
                return Err(PollError::Retry { after: None, reason: format!("the token endpoint answered {status}") });
            }
            return Err(PollError::Fail(format!(
                "the token endpoint refused the refresh token ({status}): {}",
                said()
            )));
        }
        let access = body["access_token"]
            .as_str()
            .ok_or_else(|| PollError::Fail("the token endpoint's answer has no access_token".into()))?;
        let renewed = Tokens {
            from: digest(r.token.expose()),
            access: access.to_owned(),
            // Without a new one, the refresh token stays valid.
            refresh: body["refresh_token"].as_str().map_or(refresh.clone(), str::to_owned),
        };
        let kept = Secret::new(serde_json::to_string(&renewed).unwrap_or_default());
        sink.keep_secret(KEPT, &kept).await.map_err(|e| PollError::Retry { after: None, reason: e })?;
        *tokens = Some(renewed);
        Ok(())
    }

    /// GETs `url` with the bearer token; a 401 renews it once where there is a refresh token.
    async fn get(&self, sink: &dyn IngressSink, url: &str, accept: &'static str) -> Result<Vec<u8>, PollError> {
        let mut renewed = false;
        loop {
            let token = self.access(sink).await;
            let mut auth = http::HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| PollError::Fail("the access token holds characters a header cannot".into()))?;
            auth.set_sensitive(true);
            let request = http::Request::get(url)
                .header(http::header::AUTHORIZATION, auth)
                .header(http::header::ACCEPT, accept)
                .body(bytes::Bytes::new())
                .map_err(|e| PollError::Fail(format!("the request cannot be made: {e}")))?;
            let answer = self.http.send(request, self.config.timeout).await.map_err(|e| PollError::from_http(&e))?;
            let status = answer.status();
            if status == 401 && !renewed {
                if let Provider::GreenButton { refresh: Some(r), .. } = &self.config.provider {
                    self.renew(sink, r).await?;
                    renewed = true;
                    continue;
                }
            }
            if !(200..300).contains(&status) {
                let retry_after = answer.retry_after();
                return Err(PollError::from_status(status, retry_after, &answer.text(4096).await));
            }
            let body = answer.bytes(ANSWER_MAX + 1).await;
            if body.len() > ANSWER_MAX {
                return Err(PollError::Fail(format!("the answer is larger than {} MiB", ANSWER_MAX >> 20)));
            }
            return Ok(body);
        }
    }

    async fn green_button(&self, ask: Ask<'_>, subscription: &str) -> Result<Fetched, PollError> {
        let w = ask.window;
        let query = crate::http::form(&[("published-min", &rfc3339(w.since)), ("published-max", &rfc3339(w.until))]);
        let url = format!("{}/Batch/Subscription/{subscription}?{query}", self.config.api_url);
        let feed = self.get(ask.sink, &url, "application/atom+xml").await?;
        let text = String::from_utf8(feed).map_err(|_| PollError::Fail("the feed is not UTF-8".into()))?;
        let readings = espi::readings(&text).map_err(PollError::Fail)?;
        let mut by_point: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in &readings {
            by_point.entry(r.usage_point.clone()).or_default().extend(espi_records(r));
        }
        Ok(page(by_point, "UsagePoint", None))
    }

    async fn intervals(&self, ask: Ask<'_>, meters: &[String], lookback: Duration) -> Result<Fetched, PollError> {
        let url = match ask.page.get("url").and_then(Value::as_str) {
            Some(next) => next.to_owned(),
            None => {
                let since =
                    if ask.backfill { ask.window.since } else { ask.window.since - lookback.as_millis() as i64 };
                let query = crate::http::form(&[
                    ("meters", &meters.join(",")),
                    ("start", &rfc3339(since)),
                    ("end", &rfc3339(ask.window.until)),
                ]);
                format!("{}/intervals?{query}", self.config.api_url)
            }
        };
        let body = self.get(ask.sink, &url, "application/json").await?;
        let answer: Value =
            serde_json::from_slice(&body).map_err(|e| PollError::Fail(format!("the answer is not JSON: {e}")))?;
        let Some(blocks) = answer["intervals"].as_array() else {
            return Err(PollError::Fail("the answer has no `intervals` array".into()));
        };
        let mut by_meter: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for block in blocks {
            let meter = block["meter_uid"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| block["meter_uid"].as_i64().map(|n| n.to_string()));
            let Some(meter) = meter else { return Err(PollError::Fail("an interval block has no `meter_uid`".into())) };
            let records = by_meter.entry(meter.clone()).or_default();
            for reading in block["readings"].as_array().into_iter().flatten() {
                let start = epoch_ms(&reading["start"])
                    .ok_or_else(|| PollError::Fail(format!("meter {meter}: a reading's `start` is not a time")))?;
                let seconds = epoch_ms(&reading["end"]).map(|end| (end - start) / 1000);
                for point in reading["datapoints"].as_array().into_iter().flatten() {
                    let (Some(kind), Some(value)) = (point["type"].as_str(), point["value"].as_f64()) else { continue };
                    let property = match kind {
                        k if k.contains("net") => "energy_net",
                        k if k.contains("gen") || k.contains("export") || k.contains("received") => "energy_received",
                        _ => "energy_delivered",
                    };
                    let unit = match point["unit"].as_str().unwrap_or(kind) {
                        u if u.eq_ignore_ascii_case("kwh") => "kWh".to_owned(),
                        u => u.to_owned(),
                    };
                    records.push(record(&meter, property, start, json!(value), Some(&unit), seconds, None));
                }
            }
        }
        let next = answer["next"].as_str().filter(|n| !n.is_empty() && *n != url).map(|n| json!({"url": n}));
        Ok(page(by_meter, "meters", next))
    }
}

/// A record of one interval.
fn record(
    external: &str,
    property: &str,
    at: i64,
    payload: Value,
    unit: Option<&str>,
    seconds: Option<i64>,
    quality: Option<&str>,
) -> Value {
    let mut r =
        json!({"kind": "value", "externalId": external, "property": property, "timestamp": at, "payload": payload});
    if let Some(u) = unit {
        r["unit"] = json!(u);
    }
    let mut tags = serde_json::Map::new();
    if let Some(s) = seconds {
        tags.insert("intervalSeconds".into(), json!(s.to_string()));
    }
    if let Some(q) = quality {
        tags.insert("quality".into(), json!(q));
    }
    if !tags.is_empty() {
        r["tags"] = Value::Object(tags);
    }
    r
}

/// An ESPI reading's records: its value scaled by the reading type's power
/// of ten, in the unit of measure, delivered and received apart; its cost.
fn espi_records(r: &Reading) -> Vec<Value> {
    let t = &r.reading_type;
    let (quantity, unit) = match t.uom {
        72 => ("energy", "Wh"),
        38 => ("power", "W"),
        169 => ("gas", "therm"),
        42 => ("volume", "m³"),
        _ => ("reading", ""),
    };
    let direction = match t.flow_direction {
        1 => "_delivered",
        19 => "_received",
        4 => "_net",
        _ => "",
    };
    let scaled = r.value * 10f64.powi(t.power_of_ten);
    let seconds = Some(r.duration).filter(|d| *d > 0).or(t.interval_length.map(|l| l as i64));
    let at = r.start * 1000;
    let unit = (!unit.is_empty()).then_some(unit);
    let mut out = vec![record(
        &r.usage_point,
        &format!("{quantity}{direction}"),
        at,
        json!(scaled),
        unit,
        seconds,
        r.quality.as_deref(),
    )];
    if let Some(cost) = r.cost {
        // ESPI costs are in hundred-thousandths of the currency.
        out.push(record(&r.usage_point, &format!("cost{direction}"), at, json!(cost / 100_000.0), None, seconds, None));
    }
    out
}

/// Records by external id, as messages of at most [`MAX_RECORDS`] each.
fn page(by: BTreeMap<String, Vec<Value>>, kind: &str, next: Option<Value>) -> Fetched {
    let received_at = now_ms();
    let messages = by
        .into_iter()
        .flat_map(|(external, records)| {
            let source_ref = format!("{kind}/{external}");
            records
                .chunks(MAX_RECORDS)
                .map(|chunk| InboundMessage {
                    source_ref: source_ref.clone(),
                    payload: serde_json::to_vec(&json!({ "records": chunk })).unwrap_or_default(),
                    received_at,
                    ..Default::default()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    Fetched::Page(Page { messages, next, marks: Default::default() })
}

#[async_trait]
impl Source for UtilitySource {
    async fn fetch(&self, ask: Ask<'_>) -> Result<Fetched, PollError> {
        match &self.config.provider {
            Provider::GreenButton { subscription, .. } => self.green_button(ask, subscription).await,
            Provider::Intervals { meters, lookback } => self.intervals(ask, meters, *lookback).await,
        }
    }

    fn backfill_span(&self) -> Option<Duration> {
        Some(Duration::from_secs(31 * 86_400))
    }
}
