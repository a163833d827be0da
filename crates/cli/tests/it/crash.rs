//! Accepted means durable: the server is killed with SIGKILL in the middle
//! of a load, restarted, and every record it accepted is delivered; a
//! record delivered twice carries the same webhook-id both times.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{call, switchyard, Server};

type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A receiver that takes 25 ms per request and records (record id, webhook-id).
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let sink = sink.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let record: Value = serde_json::from_slice(&body).unwrap();
            let id = record["id"].as_str().unwrap_or_default().to_owned();
            let hook = headers["webhook-id"].to_str().unwrap().to_owned();
            sink.lock().unwrap().push((id, hook));
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn start(dir: &std::path::Path) -> Server {
    Server::start(
        switchyard(dir).args(["serve", "--listen", "127.0.0.1:0"]).env("SWITCHYARD_EGRESS_ALLOW", "127.0.0.1/32"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_accepted_record() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = receiver().await;
    let mut server = start(dir.path());
    let key = std::fs::read_to_string(dir.path().join("data/admin.key")).unwrap().trim().to_owned();
    let base = server.base.clone();
    let (_, place) = call(Method::POST, &format!("{base}/v2/places"), &key, Some(json!({"name": "P"}))).await;
    let (_, device) = call(
        Method::POST,
        &format!("{base}/v2/devices"),
        &key,
        Some(json!({"name": "D", "placeId": place["id"], "deviceType": "meter"})),
    )
    .await;
    let (_, hook) = call(
        Method::POST,
        &format!("{base}/v2/integrations"),
        &key,
        Some(json!({"name": "sink", "type": "WEBHOOK", "properties": {"url": url}})),
    )
    .await;
    let (status, _) = call(
        Method::POST,
        &format!("{base}/v2/integrations/{}/triggers", hook["id"].as_str().unwrap()),
        &key,
        Some(json!({"kinds": ["value"]})),
    )
    .await;
    assert_eq!(status, 201);

    // Load: batches of 20 records with ids, until the server is killed.
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let loader = {
        let (accepted, key, base, device) = (accepted.clone(), key.clone(), base.clone(), device["id"].clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for batch in 0.. {
                let ids: Vec<String> = (0..20).map(|i| format!("r-{batch}-{i}")).collect();
                let records: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"kind": "value", "deviceId": device, "property": "p", "timestamp": 1, "payload": 1, "id": id}))
                    .collect();
                let sent = client
                    .post(format!("{base}/v2/telemetry"))
                    .header("x-api-key", &key)
                    .json(&json!({"records": records}))
                    .send()
                    .await;
                match sent {
                    Ok(res) if res.status() == 202 => accepted.lock().unwrap().extend(ids),
                    _ => break,
                }
            }
        })
    };
    // Kill once plenty is accepted and some is delivered, with work in flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    while (accepted.lock().unwrap().len() < 1000 || seen.lock().unwrap().len() < 100) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    loader.await.unwrap();
    let accepted = accepted.lock().unwrap().clone();
    let delivered_before = seen.lock().unwrap().len();
    assert!(accepted.len() >= 1000, "the load ran ({} accepted)", accepted.len());
    assert!(
        delivered_before < accepted.len(),
        "the kill left work undelivered ({delivered_before} of {})",
        accepted.len()
    );

    let restarted = start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::HashSet<String> = seen.lock().unwrap().iter().map(|(id, _)| id.clone()).collect();
        let missing = accepted.iter().filter(|id| !got.contains(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{missing} accepted records were never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut hooks: HashMap<String, Vec<String>> = HashMap::new();
    for (id, hook) in seen.lock().unwrap().iter() {
        hooks.entry(id.clone()).or_default().push(hook.clone());
    }
    for (id, ids) in &hooks {
        assert!(ids.iter().all(|h| h == &ids[0]), "{id} was delivered under different webhook-ids: {ids:?}");
    }
    let duplicates = hooks.values().filter(|v| v.len() > 1).count();
    println!(
        "accepted {}, delivered before the kill {delivered_before}, redelivered after restart {duplicates}",
        accepted.len()
    );
    drop(restarted);
}
