//! The ingress run: MQTT QoS 1 messages published to a Mosquitto on
//! loopback, received by an MQTT ingress integration, stored (each
//! acknowledged to the broker only after its commit) and delivered to the
//! webhook receiver; beside it, the broker's own relay rate: the same
//! publisher to a plain subscriber, in the same run. Then the latency at
//! 1,000 messages/s, and the memory of idle ingress integrations.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use switchyard_core::IntegrationId;
use switchyard_engine::ingress::ConnectionState;

use super::{cpu_seconds, percentile, rss_kib, Receiver};
use crate::client::Api;

/// The broker's window of unacknowledged QoS 1 messages per client (its
/// default is 20, which bounds any one subscriber at 20 messages a round
/// trip; brokers carrying a load set it higher).
const BROKER_INFLIGHT: usize = 1000;

#[derive(Debug, Clone, clap::Args)]
pub struct IngressArgs {
    /// Messages of the ingress throughput run and of its relay baseline (0 skips the ingress runs).
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Idle MQTT ingress integrations whose memory is measured.
    #[arg(long, default_value_t = 1000)]
    pub idle_integrations: usize,
}

/// A Mosquitto this run starts on a free port; killed when dropped.
pub(super) struct Broker {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub(super) async fn start() -> anyhow::Result<Broker> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = dir.path().join("mosquitto.conf");
        // As root, Mosquitto would drop to a `mosquitto` user unless told to stay.
        let user = if is_root() { "user root\n" } else { "" };
        std::fs::write(
            &conf,
            format!(
                "{user}listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages {BROKER_INFLIGHT}\n\
                 max_queued_messages 0\nmax_connections -1\n"
            ),
        )?;
        let child = std::process::Command::new("mosquitto")
            .args(["-c", &conf.to_string_lossy()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("mosquitto could not start ({e}): install Debian's mosquitto package"))?;
        let broker = Broker { port, child, _dir: dir };
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(broker);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::bail!("mosquitto did not listen on {port}")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process runs as root.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Publishes `n` QoS 1 messages to `topic` (`{"id": "{label}-{i}", "seq": i}`),
/// at most one per `pace` when given; returns once the broker acknowledged
/// them all, with when each was handed to the client when `sent` is given.
async fn publish(
    port: u16,
    topic: &str,
    label: &str,
    n: usize,
    pace: Option<Duration>,
    sent: Option<&Mutex<HashMap<u64, Instant>>>,
) -> anyhow::Result<()> {
    let mut options = MqttOptions::new(format!("bench-publisher-{label}"), "127.0.0.1", port);
    options.set_inflight(BROKER_INFLIGHT as u16).set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 10_000);
    let acked = Arc::new(AtomicU64::new(0));
    let counter = acked.clone();
    let pump = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => return Err::<(), anyhow::Error>(e.into()),
            }
        }
    });
    let mut ticker = pace.map(tokio::time::interval);
    for i in 0..n {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        if let Some(sent) = sent {
            sent.lock().unwrap().insert(i as u64, Instant::now());
        }
        let payload = format!(r#"{{"id":"{label}-{i}","seq":{i}}}"#);
        client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while acked.load(Ordering::Relaxed) < n as u64 {
        anyhow::ensure!(!pump.is_finished() && Instant::now() < deadline, "the broker stopped acknowledging");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    client.disconnect().await?;
    pump.abort();
    Ok(())
}

/// A plain subscriber (QoS 1, acknowledged at once by its client): counts what arrives.
async fn subscriber(port: u16, filter: &str) -> anyhow::Result<(Arc<AtomicU64>, Arc<Mutex<Instant>>)> {
    let mut options = MqttOptions::new("bench-subscriber", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await?;
    let (count, last) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Instant::now())));
    let (c, l, subscribed) = (count.clone(), last.clone(), Arc::new(tokio::sync::Notify::new()));
    let ready = subscribed.clone();
    tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = events.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => ready.notify_one(),
                Event::Incoming(Packet::Publish(_)) => {
                    c.fetch_add(1, Ordering::Relaxed);
                    *l.lock().unwrap() = Instant::now();
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed.notified()).await?;
    Ok((count, last))
}

/// Waits until `done` holds (checked every millisecond), at most `limit`.
async fn until<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    done: impl Fn() -> F,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    while !done().await {
        anyhow::ensure!(Instant::now() < deadline, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(Instant::now())
}

/// An MQTT ingress integration on the broker; returns its id once it is connected.
async fn ingress(api: &Api, port: u16, topic: &str, device_path: Option<&str>) -> anyhow::Result<IntegrationId> {
    let properties = json!({"host": "127.0.0.1", "port": port, "topics": [topic], "qos": "1",
        "externalIdFrom": "topic:1", "messageIdFrom": "pointer:/id", "rateLimitPerSecond": 100_000});
    let created = api
        .post("/integrations", json!({"name": topic, "type": "MQTT", "direction": "INGRESS", "properties": properties}))
        .await?;
    let id = IntegrationId::parse(created["id"].as_str().unwrap_or_default())?;
    if let Some(path) = device_path {
        let mapping = json!({"integrationId": id, "externalId": "m1", "resourcePath": path});
        api.post("/integrations/resource-mappings", mapping).await?;
    }
    Ok(id)
}

/// Waits until the ingress integration `id` is connected (30 s at most).
pub(super) async fn until_connected(engine: &switchyard_engine::Engine, id: &str) -> anyhow::Result<()> {
    let id = IntegrationId::parse(id).map_err(|_| anyhow::anyhow!("`{id}` is not an integration id"))?;
    until(Duration::from_secs(30), "the ingress connection", || connected(engine, &id)).await.map(drop)
}

async fn connected(engine: &switchyard_engine::Engine, id: &IntegrationId) -> bool {
    engine.connection(id).await.is_some_and(|(c, _)| c.state == ConnectionState::Connected)
}

async fn stored(engine: &switchyard_engine::Engine, id: &IntegrationId) -> u64 {
    engine.connection(id).await.map_or(0, |(c, _)| c.counters.stored + c.counters.duplicates)
}

/// The memory of idle MQTT ingress integrations, measured first, in a
/// process that has run nothing else yet: the RSS in all with them
/// connected, and what each added. They are deleted again afterwards.
pub(super) struct Idle {
    count: usize,
    rss_kib: u64,
    per_kib: f64,
}

pub(super) async fn idle(
    broker: &Broker,
    count: usize,
    api: &Api,
    engine: &switchyard_engine::Engine,
) -> anyhow::Result<Idle> {
    let rss_before = rss_kib("VmRSS:");
    let mut idle = Vec::with_capacity(count);
    for i in 0..count {
        idle.push(ingress(api, broker.port, &format!("idle/{i}"), None).await?);
    }
    until(Duration::from_secs(120), "every idle integration connected", || async {
        for id in &idle {
            if !connected(engine, id).await {
                return false;
            }
        }
        true
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_kib("VmRSS:");
    for id in &idle {
        api.call(http::Method::DELETE, &format!("/integrations/{id}"), None).await?;
    }
    let per_kib = rss.saturating_sub(rss_before) as f64 / count.max(1) as f64;
    Ok(Idle { count, rss_kib: rss, per_kib })
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    broker: &Broker,
    args: &IngressArgs,
    idle: &Idle,
    latency_seconds: u64,
    api: &Api,
    engine: &switchyard_engine::Engine,
    receiver: &Receiver,
    device_path: &str,
) -> anyhow::Result<()> {
    if args.messages == 0 {
        return Ok(());
    }
    let n = args.messages;

    // (f) The broker's own relay: the same publisher to a plain subscriber.
    let (relayed, last) = subscriber(broker.port, "relay/#").await?;
    let started = Instant::now();
    publish(broker.port, "relay/m1", "f", n, None, None).await?;
    until(Duration::from_secs(600), "the relay", || async { relayed.load(Ordering::Relaxed) >= n as u64 }).await?;
    let relay_rate = n as f64 / last.lock().unwrap().duration_since(started).as_secs_f64();

    // (g) The same publisher to an MQTT ingress integration: stored, then delivered.
    let id = ingress(api, broker.port, "bench/+", Some(device_path)).await?;
    until_connected(engine, id.as_str()).await?;
    let before = receiver.count.load(Ordering::Relaxed);
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    publish(broker.port, "bench/m1", "g", n, None, None).await?;
    let all_stored =
        until(Duration::from_secs(600), "storing", || async { stored(engine, &id).await >= n as u64 }).await?;
    let all_delivered = receiver.wait_for(before + n as u64, Duration::from_secs(600)).await?;
    let cpu = (cpu_seconds() - cpu_before) * 1e6 / n as f64;
    let stored_rate = n as f64 / all_stored.duration_since(started).as_secs_f64();
    let delivered_rate = n as f64 / all_delivered.duration_since(started).as_secs_f64();

    // (h) Publish → delivered at 1,000 messages/s: the commit comes before the delivery.
    let total = (latency_seconds * 1000) as usize;
    let sent: Mutex<HashMap<u64, Instant>> = Mutex::new(HashMap::with_capacity(total));
    receiver.arrivals.lock().unwrap().clear();
    receiver.track.store(true, Ordering::Relaxed);
    let before = receiver.count.load(Ordering::Relaxed);
    publish(broker.port, "bench/m1", "h", total, Some(Duration::from_millis(1)), Some(&sent)).await?;
    receiver.wait_for(before + total as u64, Duration::from_secs(120)).await?;
    receiver.track.store(false, Ordering::Relaxed);
    let arrivals = receiver.arrivals.lock().unwrap().clone();
    let mut latencies: Vec<f64> = sent
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(seq, at)| {
            arrivals.get(&format!("seq-{seq}")).map(|got| got.saturating_duration_since(*at).as_secs_f64() * 1e3)
        })
        .collect();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());

    println!();
    println!(
        "ingress: MQTT 3.1.1, QoS 1, Mosquitto on loopback (max_inflight_messages {BROKER_INFLIGHT}), SQLite synced"
    );
    println!("{:<62} {:>14} {:>12}", "measure", "result", "target");
    println!("{:<62} {:>14.0} {:>12}", "(f) baseline: the broker's relay to a plain subscriber, msg/s", relay_rate, "");
    println!(
        "{:<62} {:>14.0} {:>12}",
        "(g) stored msg/s, acknowledged after commit, throttle lifted", stored_rate, ">= 30000"
    );
    println!("{:<62} {:>13.1}% {:>12}", "    (g) as a share of (f)", 100.0 * stored_rate / relay_rate, ">= 50%");
    println!("{:<62} {:>14.0} {:>12}", "    (g) delivered to the webhook receiver, msg/s", delivered_rate, "");
    println!("{:<62} {:>14.1} {:>12}", "    CPU per message of (g), µs (publisher, server, receiver)", cpu, "");
    for (label, p, target) in [("p50", 0.5, ""), ("p99", 0.99, "<= 20"), ("p99.9", 0.999, "")] {
        let name = format!("(h) publish → delivered (after commit) {label}, ms, 1,000 msg/s");
        println!("{:<62} {:>14.2} {:>12}", name, percentile(&latencies, p), target);
    }
    println!("    ({} latency samples)", latencies.len());
    let name = format!("(i) RSS in all with {} idle MQTT ingress integrations, MB", idle.count);
    println!("{:<62} {:>14.1} {:>12}", name, idle.rss_kib as f64 / 1024.0, "<= 100");
    println!("{:<62} {:>14.1} {:>12}", "    (i) added per idle integration, KiB (measured first)", idle.per_kib, "");
    Ok(())
}
