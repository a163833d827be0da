//! Delivery under failure: auth handshakes, timeouts, refused connections,
//! a slow target beside a fast one, rate limits, the whole retry schedule,
//! the circuit breaker and the egress policy.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use sha2::Digest as _;

use crate::receiver::{value, wait_status, webhook_with_trigger, Answer, Receiver};
use crate::{spawn_configured, Backend};

/// A receiver that enforces one kind of authentication, with its own
/// implementation of each scheme (independent of the connector's).
#[derive(Clone)]
enum Enforce {
    Basic(&'static str, &'static str),
    Bearer(&'static str),
    Digest { user: &'static str, pass: &'static str, algorithm: &'static str },
}

fn digest_params(header: &str) -> Vec<(String, String)> {
    header
        .trim_start_matches("Digest ")
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

fn h(algorithm: &str, data: &str) -> String {
    if algorithm == "SHA-256" {
        hex::encode(sha2::Sha256::digest(data))
    } else {
        hex::encode(md5::Md5::digest(data))
    }
}

impl Enforce {
    fn allows(&self, method: &str, headers: &HeaderMap) -> bool {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        match self {
            Enforce::Basic(u, p) => {
                auth == format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
            }
            Enforce::Bearer(t) => auth == format!("Bearer {t}"),
            Enforce::Digest { user, pass, algorithm } => {
                let p = digest_params(auth);
                let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
                if get("username") != *user || get("nonce") != "n0nce-42" || get("qop") != "auth" {
                    return false;
                }
                let ha1 = h(algorithm, &format!("{user}:switchyard-test:{pass}"));
                let ha2 = h(algorithm, &format!("{method}:{}", get("uri")));
                let expected = h(algorithm, &format!("{ha1}:n0nce-42:{}:{}:auth:{ha2}", get("nc"), get("cnonce")));
                get("response") == expected
            }
        }
    }

    fn challenge(&self) -> Option<String> {
        match self {
            Enforce::Digest { algorithm, .. } => Some(format!(
                "Digest realm=\"switchyard-test\", qop=\"auth\", algorithm={algorithm}, nonce=\"n0nce-42\", opaque=\"op4que\""
            )),
            _ => None,
        }
    }
}

/// Starts an enforcing receiver; returns its URL and the count of accepted requests.
async fn auth_receiver(rule: Enforce) -> (String, Arc<Mutex<u32>>) {
    let accepted = Arc::new(Mutex::new(0u32));
    let counter = accepted.clone();
    let app = axum::Router::new().fallback(move |method: axum::http::Method, headers: HeaderMap| {
        let (rule, counter) = (rule.clone(), counter.clone());
        async move {
            if rule.allows(method.as_str(), &headers) {
                *counter.lock().unwrap() += 1;
                return StatusCode::NO_CONTENT.into_response();
            }
            let mut res: Response = StatusCode::UNAUTHORIZED.into_response();
            if let Some(c) = rule.challenge() {
                res.headers_mut().insert("www-authenticate", c.parse().unwrap());
            }
            res
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, accepted)
}

async fn basic_bearer_and_digest_authenticate(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    for (rule, props) in [
        (Enforce::Basic("ops", "pa:ss"), json!({"authType": "BASIC", "username": "ops", "password": "pa:ss"})),
        (Enforce::Bearer("t0ken"), json!({"authType": "BEARER", "token": "t0ken"})),
        (
            Enforce::Digest { user: "Mufasa", pass: "Circle of Life", algorithm: "SHA-256" },
            json!({"authType": "DIGEST", "username": "Mufasa", "password": "Circle of Life"}),
        ),
        (
            Enforce::Digest { user: "Mufasa", pass: "Circle of Life", algorithm: "MD5" },
            json!({"authType": "DIGEST", "username": "Mufasa", "password": "Circle of Life"}),
        ),
    ] {
        let (url, accepted) = auth_receiver(rule.clone()).await;
        let s = webhook_with_trigger(&app, &url, props, json!({"kinds": ["value"]})).await;
        app.post(
            "/v2/telemetry",
            json!({"records": [value(&s.device, "a", json!(1)), value(&s.device, "b", json!(2))]}),
        )
        .await;
        for _ in 0..500 {
            if *accepted.lock().unwrap() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*accepted.lock().unwrap(), 2, "{url}: both records accepted by the enforcing receiver");
        let done = wait_status(&app, &s.integration, "succeeded").await;
        assert_eq!(done["attempts"][0]["statusCode"], 204);

        // Wrong credentials: the receiver answers 401, a rejection.
        let mut wrong = json!({"authType": "BASIC", "username": "ops", "password": "nope"});
        if let Enforce::Bearer(_) = rule {
            wrong = json!({"authType": "BEARER", "token": "nope"});
        }
        let bad = webhook_with_trigger(&app, &url, wrong, json!({"kinds": ["event"]})).await;
        app.post("/v2/telemetry", json!({"records": [{"kind": "event", "deviceId": bad.device, "property": "x", "timestamp": 1, "payload": 1}]})).await;
        let dead = wait_status(&app, &bad.integration, "dead").await;
        assert_eq!(dead["attempts"][0]["statusCode"], 401);
    }
}

async fn timeouts_and_refused_connections_retry_with_the_reason(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let slow = Receiver::start(vec![Answer(200, vec![], Duration::from_secs(3))]).await;
    let s = webhook_with_trigger(&app, &slow.url, json!({"timeoutSeconds": 1}), json!({"kinds": ["value"]})).await;
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "a", json!(1))]})).await;
    let retrying = wait_status(&app, &s.integration, "retrying").await;
    let attempt = &retrying["attempts"][0];
    assert!(attempt["error"].as_str().unwrap().contains("timed out"), "{attempt}");
    assert!((900..5000).contains(&attempt["durationMs"].as_i64().unwrap()), "{attempt}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let s = webhook_with_trigger(&app, &url, json!({}), json!({"kinds": ["value"]})).await;
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "a", json!(1))]})).await;
    let retrying = wait_status(&app, &s.integration, "retrying").await;
    let error = retrying["attempts"][0]["error"].as_str().unwrap().to_lowercase();
    assert!(error.contains("connect") || error.contains("refused"), "{error}");
    assert_eq!(retrying["attempts"][0]["statusCode"], serde_json::Value::Null);
}

async fn a_slow_target_does_not_delay_another(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let slow = Receiver::start((0..40).map(|_| Answer(200, vec![], Duration::from_secs(2))).collect()).await;
    let fast = Receiver::start(vec![]).await;
    let s1 = webhook_with_trigger(
        &app,
        &slow.url,
        json!({"timeoutSeconds": 30}),
        json!({"kinds": ["value"], "objects": ["slow"]}),
    )
    .await;
    let s2 = webhook_with_trigger(&app, &fast.url, json!({}), json!({"kinds": ["value"], "objects": ["fast"]})).await;
    let records: Vec<_> =
        (0..40).flat_map(|i| [value(&s1.device, "slow", json!(i)), value(&s2.device, "fast", json!(i))]).collect();
    let started = Instant::now();
    let res = app.post("/v2/telemetry", json!({"records": records})).await;
    assert_eq!(res.body["deliveries"], 80);
    fast.wait_for(40).await;
    // The slow target needs at least two rounds of 2 s; the fast one must not wait for them.
    assert!(started.elapsed() < Duration::from_millis(3500), "the fast target took {:?}", started.elapsed());
    assert!(slow.received().len() < 40, "the slow one is still busy");
}

/// New deliveries go straight to their worker while it has room; past that
/// they wait in the outbox and are claimed behind the ones already there.
async fn a_full_queue_leaves_the_rest_to_the_outbox_and_loses_none(backend: Backend) {
    let app = spawn_configured(backend, |c| {
        c.dispatcher.max_queued = 3;
        c.dispatcher.concurrency = 1;
    })
    .await;
    let got = sixty_records_in_three_batches(&app).await;
    let mut payloads: Vec<i64> = got.iter().map(|r| r.json()["payload"].as_i64().unwrap()).collect();
    payloads.sort();
    assert_eq!(payloads, (0..60).collect::<Vec<_>>(), "each record once");
    let ids: std::collections::HashSet<_> = got.iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(ids.len(), 60);
}

/// Ingests 60 records in three requests to a webhook answering each in
/// 3 ms; returns what arrived once 60 have, and a little after.
async fn sixty_records_in_three_batches(app: &crate::App) -> Vec<crate::receiver::Received> {
    let rx = Receiver::start((0..60).map(|_| Answer(200, vec![], Duration::from_millis(3))).collect()).await;
    let s = webhook_with_trigger(app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    for batch in 0..3 {
        let records: Vec<_> = (0..20).map(|i| value(&s.device, "a", json!(batch * 20 + i))).collect();
        assert_eq!(app.post("/v2/telemetry", json!({"records": records})).await.body["deliveries"], 20);
    }
    rx.wait_for(60).await;
    rx.settled(Duration::from_millis(200)).await
}

/// The queues' memory budget, not only each queue's length, sends new
/// deliveries to the outbox; claims wait while the budget is spent.
async fn a_spent_memory_budget_leaves_the_rest_to_the_outbox_and_loses_none(backend: Backend) {
    let app = spawn_configured(backend, |c| {
        // Room for about three small records' deliveries, each with its
        // parsed record handed over beside its body.
        use switchyard_engine::{QUEUE_OVERHEAD, RECORD_OVERHEAD};
        c.dispatcher.max_queued_bytes = 3 * (QUEUE_OVERHEAD + RECORD_OVERHEAD + 2 * 150);
        c.dispatcher.concurrency = 1;
    })
    .await;
    let mut payloads: Vec<i64> =
        sixty_records_in_three_batches(&app).await.iter().map(|r| r.json()["payload"].as_i64().unwrap()).collect();
    payloads.sort();
    assert_eq!(payloads, (0..60).collect::<Vec<_>>(), "each record once");
}

/// A queue that drains slower than a lease lasts: its leases are renewed as
/// their sends come up, and the outbox never hands out a second copy of a
/// delivery still queued here.
async fn a_queue_slower_than_its_lease_sends_each_record_once(backend: Backend) {
    let app = spawn_configured(backend, |c| c.dispatcher.lease = Duration::from_millis(600)).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({"rateLimitPerSecond": 10}), json!({"kinds": ["value"]})).await;
    let records: Vec<_> = (0..25).map(|i| value(&s.device, "a", json!(i))).collect();
    assert_eq!(app.post("/v2/telemetry", json!({"records": records})).await.body["deliveries"], 25);
    // 25 sends at 10/s take about 2 s: more than three leases.
    rx.wait_for(25).await;
    // A second copy would come when a lease ran out: wait past one from the last arrival.
    let got = rx.settled(Duration::from_millis(1000)).await;
    let mut payloads: Vec<i64> = got.iter().map(|r| r.json()["payload"].as_i64().unwrap()).collect();
    payloads.sort();
    assert_eq!(payloads, (0..25).collect::<Vec<_>>(), "each record once, none twice");
    let listed = app.get(&format!("/v2/integrations/{}/deliveries?limit=100", s.integration)).await.body;
    let items = listed["data"].as_array().unwrap();
    assert_eq!(items.len(), 25);
    for d in items {
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["attemptCount"], 1, "one attempt each: {d}");
    }
}

async fn the_rate_limit_spaces_sends_and_drops_none(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({"rateLimitPerSecond": 5}), json!({"kinds": ["value"]})).await;
    let records: Vec<_> = (0..10).map(|i| value(&s.device, "a", json!(i))).collect();
    let started = Instant::now();
    app.post("/v2/telemetry", json!({"records": records})).await;
    rx.wait_for(10).await;
    let took = started.elapsed();
    // A burst of 5, then one every 200 ms: the tenth arrives about 1 s in.
    assert!(took >= Duration::from_millis(900), "10 sends at 5/s took only {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let mut seen: Vec<i64> = rx.received().iter().map(|r| r.json()["payload"].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>(), "delayed, never dropped");
}

async fn dead_after_the_last_attempt_then_resent(backend: Backend) {
    let app = spawn_configured(backend, |c| {
        c.dispatcher.retry_scale = 0.00001;
        c.dispatcher.breaker.cooldown = Duration::from_millis(1);
    })
    .await;
    let rx = Receiver::start((0..10).map(|_| Answer(500, vec![], Duration::ZERO)).collect()).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "a", json!(1))]})).await;
    let dead = wait_status(&app, &s.integration, "dead").await;
    let attempts = dead["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 10, "the whole schedule, then dead");
    assert!(attempts[9]["error"].as_str().unwrap().contains("last attempt"));
    assert_eq!(rx.received().len(), 10);
    let id = dead["id"].as_str().unwrap();
    assert_eq!(app.post(&format!("/v2/deliveries/{id}/resend"), json!({})).await.status, StatusCode::ACCEPTED);
    let ok = wait_status(&app, &s.integration, "succeeded").await;
    assert_eq!(ok["attempts"][10]["number"], 11, "attempts keep counting across resends");
    assert_eq!(rx.received()[10].header("webhook-id"), id);
}

async fn the_circuit_opens_after_repeated_failures_and_shows_it(backend: Backend) {
    let app = spawn_configured(backend, |c| {
        c.dispatcher.retry_scale = 0.00001;
        c.dispatcher.breaker.cooldown = Duration::from_millis(2000);
    })
    .await;
    let rx = Receiver::start((0..5).map(|_| Answer(503, vec![], Duration::ZERO)).collect()).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "first", json!(0))]})).await;
    rx.wait_for(5).await;
    let mut opened = false;
    for _ in 0..200 {
        let status = &app.get(&format!("/v2/integrations/{}", s.integration)).await.body["status"];
        if status["circuit"] == "open" {
            assert_eq!(status["consecutiveFailures"], 5);
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(opened, "five failures in a row open the circuit");
    // Records that arrive while it is open wait; nothing is sent until the cooldown ends.
    let records: Vec<_> = (1..4).map(|i| value(&s.device, "later", json!(i))).collect();
    app.post("/v2/telemetry", json!({"records": records})).await;
    assert_eq!(rx.settled(Duration::from_millis(300)).await.len(), 5, "nothing is sent while the circuit is open");
    // After the cooldown a probe succeeds, the circuit closes and every record arrives.
    rx.wait_for(5 + 4).await;
    for _ in 0..200 {
        let list = app.get(&format!("/v2/integrations/{}/deliveries?status=succeeded", s.integration)).await;
        if list.body["data"].as_array().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = app.get(&format!("/v2/integrations/{}", s.integration)).await.body["status"].clone();
    assert_eq!(status["circuit"], "closed");
    let list = app.get(&format!("/v2/integrations/{}/deliveries?status=succeeded", s.integration)).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 4, "no record was lost to the open circuit");
}

on_both_stores!(
    basic_bearer_and_digest_authenticate,
    timeouts_and_refused_connections_retry_with_the_reason,
    a_slow_target_does_not_delay_another,
    a_full_queue_leaves_the_rest_to_the_outbox_and_loses_none,
    a_queue_slower_than_its_lease_sends_each_record_once,
    a_spent_memory_budget_leaves_the_rest_to_the_outbox_and_loses_none,
    the_rate_limit_spaces_sends_and_drops_none,
    dead_after_the_last_attempt_then_resent,
    the_circuit_opens_after_repeated_failures_and_shows_it,
);

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let app = spawn_configured(Backend::Sqlite, |c| c.egress = switchyard_connectors::EgressPolicy::default()).await;
    let rx = Receiver::start(vec![]).await;
    for url in [rx.url.clone(), rx.url.replace("127.0.0.1", "localhost")] {
        let s = webhook_with_trigger(&app, &url, json!({}), json!({"kinds": ["value"]})).await;
        app.post("/v2/telemetry", json!({"records": [value(&s.device, "a", json!(1))]})).await;
        let dead = wait_status(&app, &s.integration, "dead").await;
        let error = dead["attempts"][0]["error"].as_str().unwrap();
        assert!(error.contains("not a public address") && error.contains("egress.allow"), "{url}: {error}");
    }
    assert!(rx.received().is_empty());
}

/// Every HTTP type, not only the webhook: a literal non-public address in an
/// endpoint URL, in any spelling, is refused before anything is signed or
/// sent, and nothing reaches the address.
#[tokio::test]
async fn literal_private_endpoints_are_refused_for_every_http_type() {
    let app = spawn_configured(Backend::Sqlite, |c| c.egress = switchyard_connectors::EgressPolicy::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_, device, _) = app.place_and_device("meter").await;
    let aws = json!({"region": "us-east-1", "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "secret"});
    for host in ["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"] {
        let endpoint = format!("http://{host}:{port}");
        let mut sns = aws.clone();
        sns["endpointUrl"] = json!(endpoint);
        sns["topicArn"] = json!("arn:aws:sns:us-east-1:123456789012:readings");
        let mut sqs = aws.clone();
        sqs["endpointUrl"] = json!(endpoint);
        sqs["queueUrl"] = json!(format!("{endpoint}/123456789012/readings"));
        for (kind, props) in [("AWS_SNS", sns), ("AWS_SQS", sqs)] {
            let created = app
                .post(
                    "/v2/integrations",
                    json!({"name": kind, "type": kind, "direction": "EGRESS", "properties": props}),
                )
                .await;
            assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
            let id = created.body["id"].as_str().unwrap().to_owned();
            app.post(&format!("/v2/integrations/{id}/triggers"), json!({"kinds": ["value"]})).await;
            app.post("/v2/telemetry", json!({"records": [value(&device, "a", json!(1))]})).await;
            let dead = wait_status(&app, &id, "dead").await;
            let error = dead["attempts"][0]["error"].as_str().unwrap_or_default();
            assert!(error.contains("not a public address"), "{kind} at {host}: {dead}");
            app.put(&format!("/v2/integrations/{id}"), json!({"enabled": false})).await;
        }
    }
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "no connection reached the listener");
}
