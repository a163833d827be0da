//! `switchyard bench`: the delivery path measured against its baseline, in
//! one process on this machine. The server runs on SQLite in a temporary
//! directory and delivers to a local receiver; the baseline is the same HTTP
//! client posting straight to the same receiver.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use serde_json::{json, Value};
use switchyard_connectors::http::{HttpClient, ANSWER_MAX};
use switchyard_core::{keys, now_ms, ApiKey, ApiKeyId, Cipher, Org, OrgId, Scope};

use crate::client::Api;

mod ingress;
mod polled;

/// Of every request the bench makes (none comes near it).
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Records for the throughput run (b) and, unless --baseline says
    /// otherwise, requests of the baseline (a). Any size may be 0, which
    /// skips that run (to profile one run alone).
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// Records for the one-record-per-request run (c).
    #[arg(long, default_value_t = 40_000)]
    pub single: usize,
    /// Seconds of the fixed-rate latency run (d), at 1,000 records/s.
    #[arg(long, default_value_t = 10)]
    pub latency_seconds: u64,
    /// Requests of the baseline (a), run first and again last (default: as
    /// many as --records).
    #[arg(long)]
    pub baseline: Option<usize>,
    /// Concurrent ingest requests (the baseline (a) always runs 64).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    #[command(flatten)]
    pub ingress: ingress::IngressArgs,
    #[command(flatten)]
    pub polled: polled::PolledArgs,
}

/// Counts arrivals and keeps, per record id, when it arrived.
#[derive(Clone, Default)]
struct Receiver {
    count: Arc<AtomicU64>,
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
    track: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    async fn start(&self) -> anyhow::Result<String> {
        let me = self.clone();
        let app = axum::Router::new().fallback(move |body: Bytes| {
            let me = me.clone();
            async move {
                if me.track.load(Ordering::Relaxed) {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        // A posted record by its id; an ingress run's by its sequence number.
                        let key = match (v["id"].as_str(), v["property"].as_str()) {
                            (Some(id), _) => Some(id.to_owned()),
                            (None, Some("seq")) => Some(format!("seq-{}", v["payload"])),
                            _ => None,
                        };
                        if let Some(key) = key {
                            me.arrivals.lock().unwrap().insert(key, Instant::now());
                        }
                    }
                }
                me.count.fetch_add(1, Ordering::Relaxed);
                ""
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/in", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }

    async fn wait_for(&self, n: u64, limit: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + limit;
        while self.count.load(Ordering::Relaxed) < n {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {n} deliveries arrived",
                self.count.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Instant::now())
    }
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// CPU time this process has used so far (all threads, user and system), in
/// seconds. Linux reports it in clock ticks of 1/100 s.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace();
            let utime: u64 = fields.nth(11)?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some((utime + stime) as f64 / 100.0)
        })
        .unwrap_or(0.0)
}

/// One record as JSON, the same in every run. Device ids and ids here are
/// plain ASCII: nothing to escape.
fn write_record(out: &mut String, device: &str, id: std::fmt::Arguments) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        r#"{{"kind":"value","deviceId":"{device}","property":"power","timestamp":1700000000000,"payload":12.5,"unit":"kW","id":"{id}"}}"#
    );
}

/// Posts telemetry as the baseline posts to the receiver, with the same
/// client (the one the webhook connector sends with): a body written
/// straight to bytes, the URL parsed once, the answer's status checked and
/// its body read but not parsed. So the client costs the same in (a), (b),
/// (c) and (d), and the difference between them is the server's.
#[derive(Clone)]
/// A client posting records: to `POST /v2/telemetry` with the API key, or
/// to an HTTP inbound integration's endpoint with its token.
struct Ingest {
    client: HttpClient,
    url: http::Uri,
    /// The credential's header.
    auth: (http::HeaderName, http::HeaderValue),
}

impl Ingest {
    /// A batch of `n` records with ids `{label}-{chunk}-{i}`.
    fn body(device: &str, label: &str, chunk: usize, n: usize) -> Vec<u8> {
        let mut body = String::with_capacity(32 + n * 160);
        body.push_str(r#"{"records":["#);
        for i in 0..n {
            if i > 0 {
                body.push(',');
            }
            write_record(&mut body, device, format_args!("{label}-{chunk}-{i}"));
        }
        body.push_str("]}");
        body.into_bytes()
    }

    async fn send(&self, body: Vec<u8>) -> anyhow::Result<()> {
        let request = http::Request::post(self.url.clone())
            .header(self.auth.0.clone(), self.auth.1.clone())
            .header("content-type", "application/json")
            .body(body.into())?;
        let res = self.client.send(request, TIMEOUT).await?;
        let status = res.status();
        let answer = res.bytes(ANSWER_MAX).await;
        anyhow::ensure!((200..300).contains(&status), "{}: {status} {}", self.url, String::from_utf8_lossy(&answer));
        Ok(())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the bench with the engine's settings from the configuration, except
/// its egress policy: the bench's allows only loopback, where its receiver is.
pub async fn run(args: BenchArgs, engine: switchyard_engine::EngineConfig) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = switchyard_store::open(&url, Cipher::new(&[9u8; 32])).await?;
    let org = Org { id: OrgId::new(), name: "bench".into(), custom_integrations: false, created_at: now_ms() };
    store.create_org(&org).await?;
    let new = keys::generate_api_key();
    let key = ApiKey {
        id: ApiKeyId::new(),
        org_id: org.id.clone(),
        name: "bench".into(),
        prefix: new.prefix.clone(),
        scope: Scope::Write,
        created_at: now_ms(),
        revoked_at: None,
    };
    store.create_key(&key, &new.hash).await?;
    let policy = switchyard_connectors::EgressPolicy::new(
        switchyard_connectors::EgressPolicy::parse_list("127.0.0.1/32").map_err(anyhow::Error::msg)?,
    );
    let budget_mib = engine.dispatcher.max_queued_bytes >> 20;
    let stop = tokio_util::sync::CancellationToken::new();
    let tasks = tokio_util::task::TaskTracker::new();
    let engine = switchyard_engine::Engine::start(
        store.clone(),
        switchyard_engine::EngineConfig { egress: policy.clone(), ..engine },
        stop.clone(),
        &tasks,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}/v2", listener.local_addr()?);
    let state = switchyard_api::AppState::new(engine.clone());
    tokio::spawn(async move {
        switchyard_api::serve(listener, state, &switchyard_api::ApiConfig::default(), std::future::pending()).await
    });
    let receiver = Receiver::default();
    let target = receiver.start().await?;
    let client = HttpClient::new(policy.clone(), 256);
    let key = new.plaintext.clone();
    let ingest = Ingest {
        client: client.clone(),
        url: format!("{api}/telemetry").parse()?,
        auth: (http::HeaderName::from_static("x-api-key"), http::HeaderValue::from_str(&key)?),
    };
    let api = Api::new(client, api, key);
    let place = api.post("/places", json!({"name": "bench"})).await?;
    let device = api.post("/devices", json!({"name": "m", "placeId": place["id"], "deviceType": "meter"})).await?;
    let device = device["id"].as_str().context("device id")?.to_owned();
    let device_path = format!("/places/{}/devices/{device}", place["id"].as_str().unwrap_or_default());
    let hook =
        api.post("/integrations", json!({"name": "bench", "type": "WEBHOOK", "properties": {"url": target}})).await?;
    let trigger = json!({"kinds": ["value"]});
    api.post(&format!("/integrations/{}/triggers", hook["id"].as_str().unwrap_or_default()), trigger).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kib("VmRSS:");
    // (i) first, while nothing else has run; the broker serves every ingress run.
    let broker = ingress::Broker::start().await?;
    let idle = ingress::idle(&broker, args.ingress.idle_integrations, &api, &engine).await?;

    println!(
        "switchyard bench: SQLite in {}, {} cores, queue budget {} MiB",
        dir.path().display(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        budget_mib
    );

    // (a) The baseline: the same HTTP client, straight to the same receiver.
    let mut body = String::new();
    write_record(&mut body, &device, format_args!("baseline"));
    let baseline = Baseline {
        client: switchyard_connectors::EgressContext::new(policy).http,
        target: target.parse()?,
        body: body.into(),
        requests: args.baseline.unwrap_or(args.records),
    };
    let (raw_rate, raw_cpu) = baseline.run().await?;
    receiver.count.store(0, Ordering::Relaxed);

    // (b) Batches of 100 records per ingest request, one webhook request per record.
    let rig = Rig { ingest: &ingest, receiver: &receiver, device: &device, store: &*store, clients: args.clients };
    let (b_rate, b_cpu) = rig.throughput(args.records, 100, "b").await?;
    // (c) One record per ingest request.
    let (c_rate, c_cpu) = rig.throughput(args.single, 1, "c").await?;
    // (c2) The same records, one per request, posted to an HTTP inbound integration instead.
    let inbound = api
        .post(
            "/integrations",
            json!({"name": "bench-inbound", "type": "HTTP_INBOUND", "direction": "INGRESS",
                   "properties": {"format": "records", "rateLimitPerSecond": 100_000}}),
        )
        .await?;
    let token = inbound["generatedSecrets"]["token"].as_str().context("the inbound token")?;
    let posting = Ingest {
        client: ingest.client.clone(),
        url: format!("{}/inbound/{}", api.base, inbound["id"].as_str().unwrap_or_default()).parse()?,
        auth: (http::header::AUTHORIZATION, http::HeaderValue::from_str(&format!("Bearer {token}"))?),
    };
    ingress::until_connected(&engine, inbound["id"].as_str().unwrap_or_default()).await?;
    let (c2_rate, c2_cpu) = Rig { ingest: &posting, ..rig }.throughput(args.single, 1, "c2").await?;

    // (d) Latency from ingest accepted to webhook received, at 1,000 records/s;
    // and end to end, from the ingest request sent.
    receiver.track.store(true, Ordering::Relaxed);
    let total = (args.latency_seconds * 1000) as usize;
    // Per record id: when its ingest request was sent, and when its 202 came.
    let accepted: Arc<Mutex<HashMap<String, (Instant, Instant)>>> = Arc::default();
    let start_count = receiver.count.load(Ordering::Relaxed);
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let (accepted, ingest) = (accepted.clone(), ingest.clone());
        let body = Ingest::body(&device, "d", i, 1);
        let id = format!("d-{i}-0");
        inflight.push(tokio::spawn(async move {
            let sent = Instant::now();
            ingest.send(body).await?;
            accepted.lock().unwrap().insert(id, (sent, Instant::now()));
            Ok::<(), anyhow::Error>(())
        }));
    }
    for f in inflight {
        f.await??;
    }
    receiver.wait_for(start_count + total as u64, Duration::from_secs(120)).await?;
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    let since = |from: fn(&(Instant, Instant)) -> Instant| {
        let mut ms: Vec<f64> = accepted
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(id, at)| {
                arrivals.get(id).map(|got| got.saturating_duration_since(from(at)).as_secs_f64() * 1e3)
            })
            .collect();
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        ms
    };
    // A record usually reaches the receiver before its 202 reaches the client (0 here).
    let latencies = since(|(_, answered)| *answered);
    let end_to_end = since(|(sent, _)| *sent);
    let peak_rss = rss_kib("VmHWM:");
    // The baseline again: how much the machine's own speed moved during the run.
    let (raw_rate_after, _) = baseline.run().await?;

    println!();
    println!("{:<62} {:>14} {:>12}", "measure", "result", "target");
    println!("{:<62} {:>14.0} {:>12}", "(a) baseline: same client straight to the receiver, req/s", raw_rate, "");
    println!("{:<62} {:>14.0} {:>12}", "    (a) again after (b), (c) and (d), req/s", raw_rate_after, "");
    let drift = 100.0 * (raw_rate_after / raw_rate - 1.0);
    if drift.abs() > 10.0 {
        println!("    the machine's speed moved {drift:+.0}% during the run: compare CPU per record, not rates");
    }
    println!("{:<62} {:>14.0} {:>12}", "(b) delivered records/s, ingest batches of 100", b_rate, ">= 50000");
    println!("{:<62} {:>13.1}% {:>12}", "    (b) as a share of (a)", 100.0 * b_rate / raw_rate, ">= 40%");
    println!("{:<62} {:>14.0} {:>12}", "(c) delivered records/s, one record per ingest request", c_rate, ">= 20000");
    // Each record in (c) costs at least two HTTP exchanges (its ingest request and its webhook
    // request), each at best as cheap as one exchange of (a): no design beats (a)/2 here.
    println!("{:<62} {:>14.0} {:>12}", "    ceiling for (c) on this machine: (a) / 2", raw_rate / 2.0, "");
    println!("{:<62} {:>14.0} {:>12}", "(c2) delivered records/s, one per HTTP inbound request", c2_rate, "");
    println!(
        "{:<62} {:>14.2} {:>12}",
        "(d) latency p50, ms (ingest accepted -> webhook received)",
        percentile(&latencies, 0.50),
        ""
    );
    println!(
        "{:<62} {:>14.2} {:>12}",
        "    latency p99, ms, at 1,000 records/s",
        percentile(&latencies, 0.99),
        "<= 10"
    );
    println!("{:<62} {:>14.2} {:>12}", "    latency p99.9, ms", percentile(&latencies, 0.999), "");
    for (label, p) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        let label = format!("    end to end {label}, ms (request sent -> webhook received)");
        println!("{:<62} {:>14.2} {:>12}", label, percentile(&end_to_end, p), "");
    }
    // CPU of the whole process (clients, server and receiver alike): what a record costs, free
    // of how busy the machine was.
    println!("{:<62} {:>14.1} {:>12}", "CPU per request of (a), µs (client and receiver)", raw_cpu, "");
    println!("{:<62} {:>14.1} {:>12}", "CPU per record of (b), µs (client, server, receiver)", b_cpu, "");
    println!("{:<62} {:>14.1} {:>12}", "CPU per record of (c), µs (client, server, receiver)", c_cpu, "");
    println!("{:<62} {:>14.1} {:>12}", "CPU per record of (c2), µs (client, server, receiver)", c2_cpu, "");
    println!("{:<62} {:>14.1} {:>12}", "(e) idle RSS, MB", idle_rss as f64 / 1024.0, "<= 40");
    println!("{:<62} {:>14.1} {:>12}", "    peak RSS, MB", peak_rss as f64 / 1024.0, "");
    println!("    ({} latency samples)", latencies.len());
    ingress::run(&broker, &args.ingress, &idle, args.latency_seconds, &api, &engine, &receiver, &device_path).await?;
    polled::run(&args.polled, &api, &engine).await?;
    stop.cancel();
    Ok(())
}

/// The baseline (a): 64 concurrent clients posting one record each time,
/// straight to the receiver.
struct Baseline {
    client: HttpClient,
    target: http::Uri,
    body: Bytes,
    requests: usize,
}

impl Baseline {
    /// Requests per second, and the process's CPU time per request in µs
    /// (not a number when it makes none).
    async fn run(&self) -> anyhow::Result<(f64, f64)> {
        if self.requests == 0 {
            return Ok((f64::NAN, f64::NAN));
        }
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (started, cpu_before) = (Instant::now(), cpu_seconds());
        let mut senders = Vec::with_capacity(64);
        for _ in 0..64 {
            let (c, t, b, next, n) =
                (self.client.clone(), self.target.clone(), self.body.clone(), next.clone(), self.requests);
            senders.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let request =
                        http::Request::post(t.clone()).header("content-type", "application/json").body(b.clone())?;
                    c.send(request, TIMEOUT).await?.bytes(ANSWER_MAX).await;
                }
                Ok::<(), anyhow::Error>(())
            }));
        }
        for s in senders {
            s.await??;
        }
        let rate = self.requests as f64 / started.elapsed().as_secs_f64();
        Ok((rate, (cpu_seconds() - cpu_before) * 1e6 / self.requests as f64))
    }
}

/// What the throughput runs (b) and (c) drive and watch.
struct Rig<'a> {
    ingest: &'a Ingest,
    receiver: &'a Receiver,
    device: &'a str,
    store: &'a dyn switchyard_store::Store,
    clients: usize,
}

impl Rig<'_> {
    /// Sends `n` records in requests of `batch` from `clients` concurrent
    /// tasks; returns records delivered per second, from the first request to
    /// the last webhook received, and the process's CPU µs per record until
    /// every result is recorded too.
    async fn throughput(&self, n: usize, batch: usize, label: &str) -> anyhow::Result<(f64, f64)> {
        if n == 0 {
            return Ok((f64::NAN, f64::NAN));
        }
        let before = self.receiver.count.load(Ordering::Relaxed);
        let chunks = n.div_ceil(batch);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (started, cpu_before) = (Instant::now(), cpu_seconds());
        // Each client is a task sending its next request as soon as the last is answered.
        let mut clients_done = Vec::new();
        for _ in 0..self.clients {
            let (ingest, next, device, label) =
                (self.ingest.clone(), next.clone(), self.device.to_owned(), label.to_owned());
            clients_done.push(tokio::spawn(async move {
                loop {
                    let chunk = next.fetch_add(1, Ordering::Relaxed);
                    if chunk >= chunks {
                        return Ok::<(), anyhow::Error>(());
                    }
                    ingest.send(Ingest::body(&device, &label, chunk, batch)).await?;
                }
            }));
        }
        for c in clients_done {
            c.await??;
        }
        let accepted = started.elapsed();
        let done = self.receiver.wait_for(before + (chunks * batch) as u64, Duration::from_secs(600)).await?;
        let total = done.duration_since(started);
        // The writer records results after the sends: a record's work ends there.
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.store.pending_summary().await?.iter().map(|p| p.pending).sum::<u64>() > 0 {
            anyhow::ensure!(Instant::now() < deadline, "({label}) results still unrecorded after 600 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let recorded = started.elapsed();
        let cpu = (cpu_seconds() - cpu_before) * 1e6 / n as f64;
        println!(
            "    ({label}) {n} records: all accepted after {:.2} s ({:.0} records/s in), all delivered after {:.2} s, \
             all recorded after {:.2} s",
            accepted.as_secs_f64(),
            n as f64 / accepted.as_secs_f64(),
            total.as_secs_f64(),
            recorded.as_secs_f64()
        );
        Ok((n as f64 / total.as_secs_f64(), cpu))
    }
}
