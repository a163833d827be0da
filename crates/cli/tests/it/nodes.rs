//! Several nodes on one PostgreSQL database: each ingress connection runs
//! on one node, by a lease; changes made through any node reach it; a
//! killed holder's connections are taken over, nothing lost, nothing twice.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::crash::{each_once, place_and_device, settled, Broker, Publisher};
use crate::{call, switchyard, Server};

/// A node on the PostgreSQL database at `url`, allowed to reach loopback.
fn node(dir: &std::path::Path, url: &str) -> Server {
    Server::start(
        switchyard(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("SWITCHYARD_DATABASE_URL", url)
            .env("SWITCHYARD_EGRESS_ALLOW", "127.0.0.1/32"),
    )
}

/// Polls `url` until `done` holds for its body (`limit` at most); returns when.
async fn until(url: &str, key: &str, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let (_, body) = call(Method::GET, url, key, None).await;
        if done(&body) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{what}: {url} never did; last {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap()
}

/// The node named in a connection's status is the process with that pid.
fn runs_on(view: &Value, server: &Server) -> bool {
    view["connection"]["state"] == "connected"
        && view["connection"]["node"].as_str().is_some_and(|n| n.contains(&format!("-{}-", server.pid())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_run_each_connection_once_and_take_over_a_killed_one() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = switchyard_store::testing::fresh_postgres_url().await;
    let node = |dir: &std::path::Path| node(dir, &url);
    let mut a = node(dir.path());
    let mut b = node(dir.path());
    let (key, place, device) = place_and_device(&a, dir.path()).await;
    let device = device["id"].as_str().unwrap().to_owned();
    let globals = |note: &str| json!({"globals": {"broker": "127.0.0.1", "note": note}});
    let (status, _) = call(Method::PUT, &format!("{}/v2/globals", a.base), &key, Some(globals("first"))).await;
    assert_eq!(status, 200);
    let properties = json!({"host": "{{ globals.broker }}", "port": broker.port, "topics": ["meters/+"], "qos": "1",
        "externalIdFrom": "topic:1", "messageIdFrom": "pointer:/id", "rateLimitPerSecond": 5000});
    let body = json!({"name": "meters", "type": "MQTT", "direction": "INGRESS", "properties": properties});
    let (status, created) = call(Method::POST, &format!("{}/v2/integrations", b.base), &key, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/places/{}/devices/{device}", place["id"].as_str().unwrap());
    let mapping = json!({"integrationId": id, "externalId": "m1", "resourcePath": path});
    let (status, _) =
        call(Method::POST, &format!("{}/v2/integrations/resource-mappings", a.base), &key, Some(mapping)).await;
    assert_eq!(status, 201);

    // Exactly one node runs it, and both say which.
    let on = |s: &Server| format!("{}/v2/integrations/{id}", s.base);
    until(&on(&a), &key, Duration::from_secs(15), "connected", |v| runs_on(v, &a) || runs_on(v, &b)).await;
    let (_, seen) = call(Method::GET, &on(&a), &key, None).await;
    let (holder, other) = if runs_on(&seen, &a) { (&mut a, &mut b) } else { (&mut b, &mut a) };
    until(&on(other), &key, Duration::from_secs(5), "the other node shows the holder's status", |v| runs_on(v, holder))
        .await;
    let gauge = format!("switchyard_ingress_connection_state{{integration=\"{id}\",state=\"connected\"}} 1");
    assert!(metrics(&holder.base).await.contains(&gauge));
    let elsewhere = metrics(&other.base).await;
    assert!(!elsewhere.contains(&format!("integration=\"{id}\"")), "the other node holds no connection");

    // A change made on the node that does not run it reaches the one that does.
    let change = json!({"properties": {"keepAliveSeconds": 20}});
    let (status, changed) = call(Method::PUT, &on(other), &key, Some(change)).await;
    assert_eq!(status, 200, "{changed}");
    let at = changed["updatedAt"].as_i64().unwrap();
    until(&on(holder), &key, Duration::from_secs(5), "restarted with the change", |v| {
        runs_on(v, holder) && v["connection"]["since"].as_i64().unwrap() >= at
    })
    .await;
    // So does a change to the globals its settings are templated over.
    let at = switchyard_core::now_ms();
    let (status, _) = call(Method::PUT, &format!("{}/v2/globals", other.base), &key, Some(globals("second"))).await;
    assert_eq!(status, 200);
    until(&on(holder), &key, Duration::from_secs(5), "reconnected with the new globals", |v| {
        runs_on(v, holder) && v["connection"]["since"].as_i64().unwrap() >= at
    })
    .await;

    // Messages flow; the holder is killed; the other node takes over within 15 s.
    let publisher = Publisher::start(broker.port, "two-node-publisher", 1, Duration::from_millis(2));
    let other_base = other.base.clone();
    until(
        &format!("{other_base}/v2/telemetry?deviceId={device}&limit=200"),
        &key,
        Duration::from_secs(20),
        "flowing",
        |l| l["data"].as_array().is_some_and(|d| d.len() >= 200),
    )
    .await;
    holder.kill();
    let killed = Instant::now();
    let took_over = until(&on(other), &key, Duration::from_secs(30), "taken over", |v| runs_on(v, other)).await;
    let after = took_over.duration_since(killed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (published, sent) = publisher.finish().await;
    let stored = settled(&other_base, &key, &device, sent as usize).await;
    each_once(&stored, sent, "MQTT across a takeover");
    assert!(after <= Duration::from_secs(15), "the takeover took {after:?}");
    println!(
        "taken over {:.1} s after the kill; published {published}, acknowledged {sent}, stored {}",
        after.as_secs_f64(),
        stored.len()
    );
}

/// When a local endpoint was polled, by path (`/p/{n}`).
type Polls = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<Instant>>>>;

async fn polled_endpoint() -> (String, Polls) {
    let polls: Polls = Default::default();
    let seen = polls.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().entry(uri.path().to_owned()).or_default().push(Instant::now());
            axum::Json(json!({"data": []}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, polls)
}

/// Polled integrations' timers on two nodes: each fires on exactly one
/// node (never two polls of one integration within its interval), and a
/// killed holder's timers move to the other within 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_fire_each_timer_once_and_move_a_killed_ones() {
    let (endpoint, polls) = polled_endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let url = switchyard_store::testing::fresh_postgres_url().await;
    let node = |dir: &std::path::Path| node(dir, &url);
    let mut a = node(dir.path());
    let mut b = node(dir.path());
    let (key, _, _) = place_and_device(&a, dir.path()).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let properties = json!({"url": format!("{endpoint}/p/{n}"), "intervalSeconds": 2, "itemsPointer": "/data",
                                "format": "records"});
        let body =
            json!({"name": format!("poll {n}"), "type": "HTTP_POLL", "direction": "INGRESS", "properties": properties});
        let on = if n % 2 == 0 { &a } else { &b };
        let (status, created) = call(Method::POST, &format!("{}/v2/integrations", on.base), &key, Some(body)).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let view = |s: &Server, id: &str| format!("{}/v2/integrations/{id}", s.base);
    for id in &ids {
        until(&view(&a, id), &key, Duration::from_secs(15), "polled", |v| {
            v["connection"]["poll"]["lastOutcome"] == "polled" && (runs_on(v, &a) || runs_on(v, &b))
        })
        .await;
    }
    // Watch the timers for a while: one poll per interval each, never two nodes' worth.
    let watched = Instant::now();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let gaps = |since: Instant| -> Vec<(String, Vec<f64>)> {
        polls
            .lock()
            .unwrap()
            .iter()
            .map(|(p, at)| {
                let at: Vec<&Instant> = at.iter().filter(|t| **t >= since).collect();
                (p.clone(), at.windows(2).map(|w| w[1].duration_since(*w[0]).as_secs_f64()).collect())
            })
            .collect()
    };
    for (path, g) in gaps(watched) {
        assert!(g.len() >= 2, "{path} polled on schedule: {g:?}");
        assert!(g.iter().all(|s| *s >= 1.8), "{path}: two polls within one interval, so two nodes fire it: {g:?}");
    }
    // Kill the node running the first one: within 15 s the other runs every timer.
    let (_, seen) = call(Method::GET, &view(&a, &ids[0]), &key, None).await;
    let (holder, other) = if runs_on(&seen, &a) { (&mut a, &mut b) } else { (&mut b, &mut a) };
    holder.kill();
    let killed = Instant::now();
    for id in &ids {
        until(&view(other, id), &key, Duration::from_secs(30), "taken over", |v| {
            runs_on(v, other) && v["connection"]["poll"]["lastPollAt"].as_i64().is_some()
        })
        .await;
    }
    let moved = killed.elapsed();
    let path = "/p/0".to_owned();
    let resumed = loop {
        if let Some(t) = polls.lock().unwrap()[&path].iter().find(|t| **t > killed) {
            break t.duration_since(killed);
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "the killed node's timer never fired again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        moved <= Duration::from_secs(15) && resumed <= Duration::from_secs(15),
        "moved {moved:?}, resumed {resumed:?}"
    );
    let after = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (path, g) in gaps(after) {
        assert!(g.iter().all(|s| *s >= 1.8), "{path} after the takeover: {g:?}");
    }
    println!(
        "timers moved {:.1} s after the kill; the first fired again after {:.1} s",
        moved.as_secs_f64(),
        resumed.as_secs_f64()
    );
}
