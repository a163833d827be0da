//! Operations: Prometheus metrics and retention.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::receiver::{value, wait_status, webhook_with_trigger, Answer, Receiver};
use crate::{spawn_configured, Backend};

fn line<'a>(text: &'a str, name: &str, label: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(name) && l.contains(label))
}

/// The value on the first line named `name` (with `label`, if given).
fn sample(text: &str, name: &str, label: &str) -> f64 {
    line(text, name, label)
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} {label} in {text}"))
}

#[tokio::test]
async fn metrics_show_outcomes_latency_backlog_and_circuits() {
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let ok = Receiver::start(vec![]).await;
    let failing = Receiver::start(vec![Answer(500, vec![], Duration::ZERO)]).await;
    let good = webhook_with_trigger(&app, &ok.url, json!({}), json!({"kinds": ["value"], "objects": ["good"]})).await;
    let bad =
        webhook_with_trigger(&app, &failing.url, json!({}), json!({"kinds": ["value"], "objects": ["bad"]})).await;
    app.post(
        "/v2/telemetry",
        json!({"records": [value(&good.device, "good", json!(1)), value(&bad.device, "bad", json!(2))]}),
    )
    .await;
    wait_status(&app, &good.integration, "succeeded").await;
    wait_status(&app, &bad.integration, "retrying").await;

    let res = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "no key needed, like /healthz");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = res.text().await.unwrap();
    let g = format!("integration=\"{}\"", good.integration);
    let b = format!("integration=\"{}\"", bad.integration);
    let outcome = |integration: &str, o: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("switchyard_deliveries_total")
                    && l.contains(integration)
                    && l.contains(&format!("outcome=\"{o}\""))
            })
            .unwrap_or_else(|| panic!("no {o} series for {integration}"))
            .to_owned()
    };
    assert!(outcome(&g, "delivered").ends_with(" 1"));
    assert!(outcome(&g, "retry").ends_with(" 0"), "every outcome has a series from the start");
    assert!(outcome(&b, "retry").ends_with(" 1"));
    assert!(outcome(&b, "delivered").ends_with(" 0"));
    assert!(line(&text, "switchyard_delivery_latency_seconds_count", &g).unwrap().ends_with(" 1"));
    assert!(line(&text, "switchyard_attempt_duration_seconds_bucket", &b).is_some());
    assert!(line(&text, "switchyard_pending_deliveries", &b).unwrap().ends_with(" 1"), "the retrying delivery waits");
    assert!(line(&text, "switchyard_pending_deliveries", &g).is_none(), "nothing waits for the healthy one");
    let age = sample(&text, "switchyard_oldest_pending_age_seconds", &b);
    assert!((0.0..60.0).contains(&age));
    assert!(line(&text, "switchyard_circuit_state", &b).unwrap().ends_with(" 0"), "one failure leaves it closed");
    assert!(text.lines().any(|l| l == "switchyard_records_accepted_total 2"), "{text}");
}

#[tokio::test]
async fn metrics_show_the_writer_s_rounds_and_what_waits_in_memory() {
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    // One request a second: of three records, the first goes at once, the
    // second waits for the limit, the third in the queue behind it.
    let s = webhook_with_trigger(&app, &rx.url, json!({"rateLimitPerSecond": 1}), json!({"kinds": ["value"]})).await;
    let records: Vec<_> = (0..3).map(|i| value(&s.device, "power", json!(i))).collect();
    app.post("/v2/telemetry", json!({ "records": records })).await;
    let scrape =
        || async { app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap() };
    let text = scrape().await;
    let this = format!("integration=\"{}\"", s.integration);
    assert!(sample(&text, "switchyard_queued_deliveries", &this) >= 2.0, "{text}");
    assert!(sample(&text, "switchyard_queued_bytes", "") > 0.0, "the third record waits in memory: {text}");
    assert_eq!(sample(&text, "switchyard_queue_budget_bytes", ""), (64u64 << 20) as f64, "queue_memory_mb's default");
    assert!(sample(&text, "switchyard_write_round_seconds_count", "") >= 1.0, "the ingest took a round: {text}");
    assert!(sample(&text, "switchyard_write_round_seconds_sum", "") > 0.0);

    for _ in 0..500 {
        if rx.got.lock().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rx.got.lock().unwrap().len(), 3);
    let mut text = scrape().await;
    // The last result reaches the counters just after the receiver has it.
    for _ in 0..100 {
        if sample(&text, "switchyard_queued_deliveries", &this) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        text = scrape().await;
    }
    assert_eq!(sample(&text, "switchyard_queued_deliveries", &this), 0.0, "{text}");
    assert_eq!(sample(&text, "switchyard_queued_bytes", ""), 0.0, "{text}");
}

#[tokio::test]
async fn retention_purges_finished_deliveries_and_keeps_waiting_ones() {
    let app = spawn_configured(Backend::Sqlite, |c| {
        c.retention = Duration::from_millis(300);
        c.retention_interval = Duration::from_millis(100);
    })
    .await;
    let ok = Receiver::start(vec![]).await;
    let failing = Receiver::start(vec![Answer(500, vec![], Duration::ZERO)]).await;
    let good = webhook_with_trigger(&app, &ok.url, json!({}), json!({"kinds": ["value"], "objects": ["good"]})).await;
    let bad =
        webhook_with_trigger(&app, &failing.url, json!({}), json!({"kinds": ["value"], "objects": ["bad"]})).await;
    app.post(
        "/v2/telemetry",
        json!({"records": [value(&good.device, "good", json!(1)), value(&bad.device, "bad", json!(2))]}),
    )
    .await;
    let done = wait_status(&app, &good.integration, "succeeded").await;
    let waiting = wait_status(&app, &bad.integration, "retrying").await;
    let done_path = format!("/v2/deliveries/{}", done["id"].as_str().unwrap());
    // Deliveries, then the records they no longer need, are purged in separate statements.
    for _ in 0..300 {
        let left = app.store.records_between(&app.org.id, 0, i64::MAX, None, 10).await.unwrap();
        if app.get(&done_path).await.status == StatusCode::NOT_FOUND && left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        app.get(&done_path).await.status,
        StatusCode::NOT_FOUND,
        "finished deliveries are purged after the retention"
    );
    let kept = app.get(&format!("/v2/deliveries/{}", waiting["id"].as_str().unwrap())).await;
    assert_eq!(kept.status, StatusCode::OK, "a waiting delivery and its record are kept, however old");
    assert_eq!(kept.body["publishedData"]["property"], "bad");
    let left = app.store.records_between(&app.org.id, 0, i64::MAX, None, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|(_, r)| r.property.as_str()).collect::<Vec<_>>(),
        ["bad"],
        "the delivered record is gone too"
    );
}

#[tokio::test]
async fn retention_purges_the_ingress_message_log() {
    let app = spawn_configured(Backend::Sqlite, |c| {
        c.retention = Duration::from_millis(300);
        c.retention_interval = Duration::from_millis(100);
    })
    .await;
    // Disabled (nothing connects); its messages come in through the engine's receive path.
    let created = app
        .post(
            "/v2/integrations",
            json!({"name": "b", "type": "MQTT", "direction": "INGRESS", "enabled": false,
                   "properties": {"host": "127.0.0.1", "topics": ["a/+"], "externalIdFrom": "topic:1"}}),
        )
        .await;
    let id = switchyard_core::IntegrationId::parse(created.body["id"].as_str().unwrap()).unwrap();
    let integration = app.store.get_integration(&app.org.id, &id).await.unwrap().unwrap();
    let decoder = switchyard_connectors::decode::Decoder::of(&integration).unwrap();
    let message = switchyard_core::InboundMessage {
        source_ref: "a/nobody".into(),
        payload: br#"{"v": 1}"#.to_vec(),
        received_at: switchyard_core::now_ms(),
        ..Default::default()
    };
    let order = tokio::sync::Mutex::new(());
    let received = app.engine.receive(&app.org.id, &id, &decoder, message, &order, None).await.unwrap().await.unwrap();
    assert_eq!(received.outcome, switchyard_core::MessageOutcome::Unmapped);
    let log = format!("/v2/integrations/{id}/messages");
    assert_eq!(app.get(&log).await.body["data"].as_array().unwrap().len(), 1);
    for _ in 0..300 {
        if app.get(&log).await.body["data"].as_array().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the message log was not purged after the retention");
}
