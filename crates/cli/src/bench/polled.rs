//! The polled sources' runs: (j) a UTILITY_DATA backfill of two years of
//! hourly readings for ten meters from a local intervals API (in the shape
//! of UtilityAPI's), beside the same pages fetched and parsed alone (the
//! baseline), then the same backfill again (storing nothing); (k) hundreds
//! of HTTP_POLL integrations on a one-minute interval, each tick's lateness
//! against its schedule, and the CPU the process spends meanwhile beside
//! the same process idle.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use switchyard_connectors::http::HttpClient;
use switchyard_core::IntegrationId;

use super::{cpu_seconds, percentile};
use crate::client::Api;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Readings in one page of the intervals API.
const PAGE: usize = 10_000;

#[derive(Debug, Clone, clap::Args)]
pub struct PolledArgs {
    /// Meters of the backfill run (j) (0 skips it).
    #[arg(long, default_value_t = 10)]
    pub backfill_meters: usize,
    /// Days of hourly readings per meter the backfill fetches.
    #[arg(long, default_value_t = 730)]
    pub backfill_days: i64,
    /// HTTP_POLL integrations of the schedule run (k) (0 skips it).
    #[arg(long, default_value_t = 500)]
    pub polled: usize,
    /// Seconds the schedule run lasts (each integration polls every 60 s).
    #[arg(long, default_value_t = 300)]
    pub polled_seconds: u64,
}

/// The intervals API: `meters` meters with a reading every hour of [from, to).
#[derive(Clone)]
struct Utility {
    meters: usize,
    from: i64,
    to: i64,
    polls: Arc<AtomicU64>,
}

fn value(meter: usize, at: i64) -> f64 {
    ((at / HOUR) % 24) as f64 * 0.1 + meter as f64
}

impl Utility {
    /// A page of `/intervals?meters=&start=&end=&page=`, in UtilityAPI's shape.
    fn page(&self, query: &std::collections::HashMap<String, String>, host: &str) -> Value {
        let time = |k: &str| query.get(k).and_then(|t| switchyard_connectors::decode::epoch_ms(&json!(t)));
        let (start, end) = (time("start").unwrap_or(0).max(self.from), time("end").unwrap_or(0).min(self.to));
        let first = start.div_euclid(HOUR) * HOUR + if start.rem_euclid(HOUR) == 0 { 0 } else { HOUR };
        let hours = ((end - first).max(0) / HOUR) as usize;
        let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
        let total = hours * self.meters;
        let mut blocks: Vec<Value> = Vec::new();
        for n in page * PAGE..((page + 1) * PAGE).min(total) {
            let (meter, hour) = (n / hours, n % hours);
            let at = first + hour as i64 * HOUR;
            if blocks.last().is_none_or(|b| b["meter_uid"] != format!("m-{meter}")) {
                blocks.push(json!({"meter_uid": format!("m-{meter}"), "readings": []}));
            }
            let (s, e) =
                (switchyard_connectors::shared::rfc3339(at), switchyard_connectors::shared::rfc3339(at + HOUR));
            let reading = json!({"start": s, "end": e, "datapoints": [{"type": "kwh", "unit": "kwh", "value": value(meter, at)}]});
            blocks.last_mut().expect("pushed")["readings"].as_array_mut().expect("an array").push(reading);
        }
        let mut next = Value::Null;
        if (page + 1) * PAGE < total {
            let rest: Vec<String> =
                query.iter().filter(|(k, _)| *k != "page").map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
            next = json!(format!("http://{host}/api/v2/intervals?{}&page={}", rest.join("&"), page + 1));
        }
        json!({"intervals": blocks, "next": next})
    }

    async fn start(self) -> anyhow::Result<String> {
        let polls = self.polls.clone();
        let app = axum::Router::new()
            .route(
                "/api/v2/intervals",
                axum::routing::get(
                    move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
                          headers: http::HeaderMap| {
                        let me = self.clone();
                        async move {
                            let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
                            axum::Json(me.page(&q, &host))
                        }
                    },
                ),
            )
            // What the schedule run's integrations poll: nothing new, at once.
            .route(
                "/poll/{n}",
                axum::routing::get(move || {
                    polls.fetch_add(1, Ordering::Relaxed);
                    async { axum::Json(json!({"data": []})) }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The baseline of (j): every window of the backfill fetched and parsed
/// alone, page by page, with the same client; readings per second.
async fn fetch_alone(client: &HttpClient, base: &str, meters: &str, from: i64, to: i64) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut readings = 0u64;
    let mut since = from;
    while since < to {
        let until = (since + 31 * DAY).min(to);
        let (s, e) = (switchyard_connectors::shared::rfc3339(since), switchyard_connectors::shared::rfc3339(until));
        let mut url = format!("{base}/api/v2/intervals?meters={meters}&start={}&end={}", urlencode(&s), urlencode(&e));
        loop {
            let request = http::Request::get(url.as_str()).body(axum::body::Bytes::new())?;
            let answer = client.send(request, Duration::from_secs(60)).await?;
            let page: Value = serde_json::from_slice(&answer.bytes(64 << 20).await)?;
            for block in page["intervals"].as_array().into_iter().flatten() {
                readings += block["readings"].as_array().map_or(0, |r| r.len() as u64);
            }
            match page["next"].as_str() {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        since = until;
    }
    Ok((readings as f64 / started.elapsed().as_secs_f64(), readings))
}

/// Runs a backfill of [from, to) and waits for its end; (seconds, records stored).
async fn backfill(api: &Api, integration: &str, from: i64, to: i64) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let action =
        api.post(&format!("/integrations/{integration}/actions/backfill"), json!({"from": from, "to": to})).await?;
    let id = action["id"].as_str().context("the action's id")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let a = api.get(&format!("/actions/{id}")).await?;
        match a["status"].as_str() {
            Some("succeeded") => {
                return Ok((started.elapsed().as_secs_f64(), a["progress"]["records"].as_u64().unwrap_or(0)))
            }
            Some("queued" | "running") => {}
            other => anyhow::bail!("the backfill ended {other:?}: {}", a["error"]),
        }
        anyhow::ensure!(Instant::now() < deadline, "the backfill did not end within 30 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) async fn run(args: &PolledArgs, api: &Api, engine: &switchyard_engine::Engine) -> anyhow::Result<()> {
    if args.backfill_meters == 0 && args.polled == 0 {
        return Ok(());
    }
    // Readings end a week ago, so the backfill's integration's own first poll (its look-back) finds none.
    let now = switchyard_core::now_ms().div_euclid(HOUR) * HOUR;
    let (to, from) = (now - 7 * DAY, now - 7 * DAY - args.backfill_days * DAY);
    let utility = Utility { meters: args.backfill_meters, from, to, polls: Arc::default() };
    let polls = utility.polls.clone();
    let base = utility.start().await?;
    println!();
    println!("polled sources: a local intervals API and HTTP endpoints on loopback, SQLite synced");
    println!("{:<62} {:>14} {:>12}", "measure", "result", "target");

    if args.backfill_meters > 0 {
        let meters: Vec<String> = (0..args.backfill_meters).map(|m| format!("m-{m}")).collect();
        let loopback = switchyard_connectors::EgressPolicy::parse_list("127.0.0.1/32").map_err(anyhow::Error::msg)?;
        let client = HttpClient::new(switchyard_connectors::EgressPolicy::new(loopback), 4);
        let (alone_rate, expected) = fetch_alone(&client, &base, &meters.join(","), from, to).await?;
        let place = api.post("/places", json!({"name": "bench meters"})).await?;
        let properties = json!({"provider": "intervals", "apiUrl": format!("{base}/api/v2"), "meters": meters,
            "accessToken": "bench", "intervalSeconds": 86_400, "rateLimitPerSecond": 100_000,
            "place": format!("/places/{}", place["id"].as_str().unwrap_or_default())});
        let created = api
            .post("/integrations", json!({"name": "bench utility", "type": "UTILITY_DATA", "direction": "INGRESS", "properties": properties}))
            .await?;
        let id = created["id"].as_str().context("the integration's id")?.to_owned();
        super::ingress::until_connected(engine, &id).await.ok();
        let (first_s, stored) = backfill(api, &id, from, to).await?;
        let (again_s, again) = backfill(api, &id, from, to).await?;
        let label = format!(
            "(j) backfill of {expected} readings ({} meters × {} days hourly), s",
            args.backfill_meters, args.backfill_days
        );
        println!("{:<62} {:>14.1} {:>12}", label, first_s, "<= 60");
        println!("{:<62} {:>14.0} {:>12}", "    (j) readings stored/s", stored as f64 / first_s, "");
        println!(
            "{:<62} {:>14.0} {:>12}",
            "    baseline: the same pages fetched and parsed alone, readings/s", alone_rate, ""
        );
        println!("{:<62} {:>14} {:>12}", "    (j) records stored", stored, expected);
        println!("{:<62} {:>14.1} {:>12}", "    (j) again: s", again_s, "");
        println!("{:<62} {:>14} {:>12}", "    (j) again: records stored", again, "0");
    }

    if args.polled > 0 {
        // The process idle first, for as long as a tenth of the run (at least 10 s).
        let idle_for = Duration::from_secs((args.polled_seconds / 10).max(5));
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        tokio::time::sleep(idle_for).await;
        let idle_share = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
        let mut ids = Vec::with_capacity(args.polled);
        for n in 0..args.polled {
            let properties = json!({"url": format!("{base}/poll/{n}"), "intervalSeconds": 60, "itemsPointer": "/data",
                                    "format": "records"});
            let created = api
                .post("/integrations", json!({"name": format!("poll {n}"), "type": "HTTP_POLL", "direction": "INGRESS", "properties": properties}))
                .await?;
            ids.push(IntegrationId::parse(created["id"].as_str().unwrap_or_default())?);
        }
        // Each integration's last poll and the next it was told, sampled every 10 s (polls are 60 s apart).
        let mut told: Vec<Option<(i64, i64)>> = vec![None; ids.len()];
        let mut lateness_ms = Vec::new();
        let (polls_before, cpu1, t1) = (polls.load(Ordering::Relaxed), cpu_seconds(), Instant::now());
        let every = Duration::from_secs(args.polled_seconds.clamp(1, 10));
        while t1.elapsed() < Duration::from_secs(args.polled_seconds) {
            tokio::time::sleep(every).await;
            for (i, id) in ids.iter().enumerate() {
                let Some((view, _)) = engine.connection(id).await else { continue };
                let Some(poll) = view.poll else { continue };
                if let Some((last, next)) = told[i] {
                    if poll.last_poll_at != last {
                        lateness_ms.push((poll.last_poll_at - next) as f64);
                    }
                }
                told[i] = Some((poll.last_poll_at, poll.next_poll_at));
            }
        }
        let busy_share = (cpu_seconds() - cpu1) / t1.elapsed().as_secs_f64();
        let served = polls.load(Ordering::Relaxed) - polls_before;
        lateness_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let name = format!(
            "(k) {} HTTP_POLL integrations, 60 s apart, {} s: tick lateness p99, ms",
            args.polled, args.polled_seconds
        );
        println!("{:<62} {:>14.0} {:>12}", name, percentile(&lateness_ms, 0.99), "<= 2000");
        println!("{:<62} {:>14.0} {:>12}", "    (k) lateness p50, ms", percentile(&lateness_ms, 0.5), "");
        println!(
            "{:<62} {:>14.0} {:>12}",
            "    (k) lateness max, ms",
            lateness_ms.last().copied().unwrap_or(f64::NAN),
            ""
        );
        println!(
            "{:<62} {:>14} {:>12}",
            "    (k) polls served / ticks measured",
            format!("{served} / {}", lateness_ms.len()),
            ""
        );
        println!(
            "{:<62} {:>13.2}% {:>12}",
            "    (k) CPU while they wait and poll, % of one core",
            100.0 * busy_share,
            "<= 5%"
        );
        println!(
            "{:<62} {:>13.2}% {:>12}",
            "    baseline: the same process idle, % of one core",
            100.0 * idle_share,
            ""
        );
        for id in &ids {
            api.call(http::Method::DELETE, &format!("/integrations/{id}"), None).await?;
        }
    }
    Ok(())
}
