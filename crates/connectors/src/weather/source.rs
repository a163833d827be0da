//! One request to Open-Meteo: the forecast API for a poll (current values
//! and the hourly forecast), the archive for a backfill's window; the
//! answer's series become records in Switchyard's record JSON.
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use switchyard_core::{now_ms, InboundMessage, Integration, IntegrationId, OrgId, PlaceId, ResourcePath, Secret};

use crate::decode::MAX_RECORDS;
use crate::egress::{BuildError, EgressContext, Resources};
use crate::http::HttpClient;
use crate::poll::{Ask, Fetched, Page, PollError, Source, Window};
use crate::shared::Settings;

/// The most of one answer read (a month of hourly values of many variables).
const ANSWER_MAX: usize = 16 << 20;
/// The external id the Place's weather device is mapped by.
pub const EXTERNAL_ID: &str = "weather";
const HOUR_MS: i64 = 3_600_000;

pub struct WeatherConfig {
    place: PlaceId,
    variables: Vec<String>,
    forecast_hours: u32,
    api_url: String,
    archive_url: String,
    api_key: Option<Secret>,
    timeout: Duration,
    pub interval: Duration,
}

impl WeatherConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let place = match ResourcePath::parse(s.required("place")?) {
            Ok(ResourcePath::Place(p)) => p,
            _ => return Err(BuildError::Config("place: must be a Place (`/places/plc_…`)".into())),
        };
        let url = |name| s.required(name).map(|u| u.trim_end_matches('/').to_owned());
        Ok(Self {
            place,
            variables: s.strings("variables")?,
            forecast_hours: s.number("forecastHours")?.unwrap_or(24.0) as u32,
            api_url: url("apiUrl")?,
            archive_url: url("archiveUrl")?,
            api_key: s.secret("apiKey")?,
            timeout: Duration::from_secs_f64(s.number("timeoutSeconds")?.unwrap_or(30.0)),
            interval: Duration::from_secs_f64(s.number("intervalSeconds")?.unwrap_or(900.0)),
        })
    }
}

pub struct WeatherSource {
    config: WeatherConfig,
    org: OrgId,
    integration: IntegrationId,
    http: HttpClient,
    resources: std::sync::Arc<dyn Resources>,
}

impl WeatherSource {
    pub fn new(config: WeatherConfig, integration: &Integration, ctx: &EgressContext) -> Result<Self, BuildError> {
        let resources =
            ctx.resources.clone().ok_or_else(|| BuildError::Config("no store to read the Place from".into()))?;
        Ok(Self {
            config,
            org: integration.org_id.clone(),
            integration: integration.id.clone(),
            http: ctx.http.clone(),
            resources,
        })
    }

    /// The Place's latitude and longitude, read at each request (a move applies at the next).
    async fn location(&self) -> Result<(f64, f64), PollError> {
        let place = self.resources.place(&self.org, &self.config.place).await.ok_or_else(|| {
            PollError::Fail(format!("the Place {} no longer exists: choose another in `place`", self.config.place))
        })?;
        let l = place.location.ok_or_else(|| {
            PollError::Fail(format!(
                "the Place {} has no location: set its latitude and longitude (PUT /v2/places/{})",
                place.name, place.id
            ))
        })?;
        Ok((l.latitude, l.longitude))
    }

    fn url(&self, base: &str, path: &str, query: &[(&str, String)]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        if let Some(key) = &self.config.api_key {
            q.append_pair("apikey", key.expose());
        }
        format!("{base}{path}?{}", q.finish())
    }

    async fn get(&self, url: &str) -> Result<Value, PollError> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(bytes::Bytes::new())
            .map_err(|e| PollError::Fail(format!("the request cannot be made: {e}")))?;
        let answer = self.http.send(request, self.config.timeout).await.map_err(|e| PollError::from_http(&e))?;
        let status = answer.status();
        if !(200..300).contains(&status) {
            let retry_after = answer.retry_after();
            let text = answer.text(4096).await;
            // Open-Meteo says why in `reason`.
            let said = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(PollError::from_status(status, retry_after, &said));
        }
        let body = answer.bytes(ANSWER_MAX + 1).await;
        if body.len() > ANSWER_MAX {
            return Err(PollError::Fail(format!("the answer is larger than {} MiB", ANSWER_MAX >> 20)));
        }
        serde_json::from_slice(&body).map_err(|e| PollError::Fail(format!("the answer is not JSON: {e}")))
    }

    /// Records of one series block (`current` or `hourly`) of an answer:
    /// `name` makes each variable's property; only times in `window` when given.
    fn series(
        &self,
        answer: &Value,
        block: &str,
        window: Option<Window>,
        mut name: impl FnMut(&str, i64) -> (String, Option<String>),
        tags: &Map<String, Value>,
    ) -> Result<Vec<Value>, PollError> {
        let Some(data) = answer.get(block).filter(|b| !b.is_null()) else { return Ok(vec![]) };
        let units = &answer[format!("{block}_units")];
        let times: Vec<i64> = match &data["time"] {
            Value::Array(ts) => ts.iter().map(|t| t.as_i64().map(|s| s * 1000)).collect::<Option<_>>(),
            t => t.as_i64().map(|s| vec![s * 1000]),
        }
        .ok_or_else(|| PollError::Fail(format!("`{block}.time` is not unix time: ask for timeformat=unixtime")))?;
        let mut out = Vec::new();
        for variable in &self.config.variables {
            let values: Vec<&Value> = match &data[variable] {
                Value::Array(vs) => vs.iter().collect(),
                Value::Null => continue,
                one => vec![one],
            };
            for (at, value) in times.iter().zip(values) {
                if value.is_null() || window.is_some_and(|w| *at < w.since || *at >= w.until) {
                    continue;
                }
                let (property, id) = name(variable, *at);
                let mut record = json!({"kind": "value", "externalId": EXTERNAL_ID, "property": property,
                                        "timestamp": at, "payload": value});
                if let Some(unit) = units[variable].as_str() {
                    record["unit"] = json!(unit);
                }
                if let Some(id) = id {
                    record["id"] = json!(id);
                }
                if !tags.is_empty() {
                    record["tags"] = Value::Object(tags.clone());
                }
                out.push(record);
            }
        }
        Ok(out)
    }
}

/// Records as messages of at most [`MAX_RECORDS`] each.
fn messages(source_ref: &str, records: Vec<Value>) -> Vec<InboundMessage> {
    let received_at = now_ms();
    records
        .chunks(MAX_RECORDS)
        .map(|chunk| InboundMessage {
            source_ref: source_ref.to_owned(),
            payload: serde_json::to_vec(&json!({ "records": chunk })).unwrap_or_default(),
            received_at,
            ..Default::default()
        })
        .collect()
}

/// `YYYY-MM-DD` of a time (UTC).
fn date(ms: i64) -> String {
    crate::shared::rfc3339(ms)[..10].to_owned()
}

#[async_trait]
impl Source for WeatherSource {
    async fn fetch(&self, ask: Ask<'_>) -> Result<Fetched, PollError> {
        let (latitude, longitude) = self.location().await?;
        let variables = self.config.variables.join(",");
        let mut query = vec![
            ("latitude", latitude.to_string()),
            ("longitude", longitude.to_string()),
            ("timeformat", "unixtime".to_owned()),
            ("timezone", "GMT".to_owned()),
        ];
        let none = Map::new();
        let records = if ask.backfill {
            let w = ask.window;
            query.push(("start_date", date(w.since)));
            query.push(("end_date", date((w.until - 1).max(w.since))));
            query.push(("hourly", variables));
            let answer = self.get(&self.url(&self.config.archive_url, "/v1/archive", &query)).await?;
            self.series(&answer, "hourly", Some(w), |v, _| (v.to_owned(), None), &none)?
        } else {
            query.push(("current", variables.clone()));
            if self.config.forecast_hours > 0 {
                query.push(("hourly", variables));
                query.push(("forecast_hours", self.config.forecast_hours.to_string()));
            }
            let answer = self.get(&self.url(&self.config.api_url, "/v1/forecast", &query)).await?;
            let mut records = self.series(&answer, "current", None, |v, _| (v.to_owned(), None), &none)?;
            // A forecast is stored once per hour it was issued in, beside the others, never over an observation.
            let issued = now_ms().div_euclid(HOUR_MS) * HOUR_MS;
            let tags: Map<String, Value> =
                [("issuedAt".to_owned(), json!(crate::shared::rfc3339(issued)))].into_iter().collect();
            let id = |v: &str, at: i64| {
                (format!("{v}_forecast"), Some(format!("{}/{v}_forecast/{at}/{issued}", self.integration)))
            };
            records.extend(self.series(&answer, "hourly", None, id, &tags)?);
            records
        };
        let source_ref = if ask.backfill { "archive" } else { "forecast" };
        Ok(Fetched::Page(Page { messages: messages(source_ref, records), next: None, marks: Default::default() }))
    }

    fn backfill_span(&self) -> Option<Duration> {
        Some(Duration::from_secs(31 * 86_400))
    }
}
