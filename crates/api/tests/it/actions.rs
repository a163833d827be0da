//! Actions over the API: accepted with 202, observed at /v2/actions/{id}.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::receiver::{value, verify, webhook_with_trigger, Answer, Receiver};
use crate::{assert_problem, spawn_configured, App, Backend};

/// Polls an action until it is finished (10 s at most).
pub async fn finished(app: &App, id: &str) -> Value {
    for _ in 0..1000 {
        let a = app.get(&format!("/v2/actions/{id}")).await.body;
        if a["status"] == "succeeded" || a["status"] == "failed" {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("action {id} did not finish");
}

async fn test_send_reports_one_attempt(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![Answer(200, vec![], Duration::ZERO), Answer(500, vec![], Duration::ZERO)]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["alarm"]})).await;
    let listed = app.get(&format!("/v2/integrations/{}", s.integration)).await;
    assert_eq!(listed.body["actions"], json!(["test-send", "backfill"]));

    let started =
        app.post(&format!("/v2/integrations/{}/actions/test-send", s.integration), json!({"property": "ping"})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    assert!(started.body["id"].as_str().unwrap().starts_with("act_"));
    assert_eq!(started.body["status"], "queued");
    let done = finished(&app, started.body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!((done["result"]["delivered"].as_bool(), done["result"]["statusCode"].as_u64()), (Some(true), Some(200)));
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json()["property"], "ping");
    assert_eq!(got[0].json()["tags"]["switchyard"], "test-send");
    assert!(verify(&s.secret, &got[0]), "test sends are signed like any delivery");
    let delivery = app.get(&format!("/v2/deliveries/{}", done["result"]["deliveryId"].as_str().unwrap())).await;
    assert_eq!(delivery.body["status"], "succeeded", "the test send is in the delivery log");
    assert_eq!(done["deliveries"], json!({"succeeded": 1}));

    // A failing target: the action fails with the reason, and there is no retry.
    let failed = app.post(&format!("/v2/integrations/{}/actions/test-send", s.integration), json!({})).await;
    let done = finished(&app, failed.body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"], "HTTP 500");
    assert_eq!(done["result"]["statusCode"], 500);
    assert_eq!(rx.settled(Duration::from_millis(200)).await.len(), 2, "a test send is tried once");
    assert_eq!(done["deliveries"], json!({"dead": 1}));
}

async fn backfill_redelivers_matching_records_of_a_range(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    // Records stored before the trigger exists are not delivered...
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["event"]})).await;
    let mut records: Vec<Value> = (0..10)
        .map(|i| {
            let mut r = value(&s.device, "power", json!(i));
            r["timestamp"] = json!(1_000 + i);
            r
        })
        .collect();
    records.extend((0..5).map(|i| {
        let mut r = value(&s.device, "voltage", json!(i));
        r["timestamp"] = json!(1_000 + i);
        r
    }));
    let mut late = value(&s.device, "power", json!(99));
    late["timestamp"] = json!(5_000);
    records.push(late);
    let res = app.post("/v2/telemetry", json!({"records": records})).await;
    assert_eq!(res.body["deliveries"], 0);
    // ...until a backfill over their range, with a trigger that matches some of them.
    let triggers = app.get(&format!("/v2/integrations/{}/triggers", s.integration)).await;
    let t = triggers.body["data"][0]["id"].as_str().unwrap();
    app.put(
        &format!("/v2/integrations/{}/triggers/{t}", s.integration),
        json!({"kinds": ["value"], "objects": ["power"]}),
    )
    .await;
    let started = app
        .post(&format!("/v2/integrations/{}/actions/backfill", s.integration), json!({"from": 0, "to": 2_000}))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    let done = finished(&app, started.body["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], json!({"scanned": 15, "matched": 10}));
    let got = rx.wait_for(10).await;
    let mut payloads: Vec<i64> = got.iter().map(|r| r.json()["payload"].as_i64().unwrap()).collect();
    payloads.sort();
    assert_eq!(payloads, (0..10).collect::<Vec<_>>());
    for _ in 0..500 {
        if app.get(&format!("/v2/actions/{}", done["id"].as_str().unwrap())).await.body["deliveries"]
            == json!({"succeeded": 10})
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the backfill's deliveries did not all succeed");
}

on_both_stores!(test_send_reports_one_attempt, backfill_redelivers_matching_records_of_a_range);

#[tokio::test]
async fn actions_validate_their_parameters() {
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    let path = |a: &str| format!("/v2/integrations/{}/actions/{a}", s.integration);
    assert_problem(&app.post(&path("reboot"), json!({})).await, StatusCode::NOT_FOUND, "not_found");
    for (body, field) in [
        (json!({"to": 10}), "from"),
        (json!({"from": 10, "to": 5}), "to"),
        (json!({"from": "yesterday", "to": 5}), "from"),
        (json!({"from": 0, "to": 5, "speed": 2}), "speed"),
    ] {
        let res = app.post(&path("backfill"), body.clone()).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{body}");
    }
    assert_eq!(app.post(&path("test-send"), json!({"kind": "reading"})).await.fields(), ["kind"]);
    // Another organization's device is not one of ours; a property has the bounds of any record's.
    let (other_org, other_key) = crate::new_org(&*app.store, "Other", false).await;
    let place = app.call(Method::POST, "/v2/places", Some(&other_key), Some(json!({"name": "Theirs"}))).await;
    let theirs = app
        .call(
            Method::POST,
            "/v2/devices",
            Some(&other_key),
            Some(json!({"name": "d", "placeId": place.body["id"], "deviceType": "meter"})),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{:?} in {}", theirs.body, other_org.id);
    for (body, field) in [
        (json!({"deviceId": theirs.body["id"]}), "deviceId"),
        (json!({"deviceId": 5}), "deviceId"),
        (json!({"property": "p".repeat(10_000)}), "property"),
        (json!({"property": ""}), "property"),
    ] {
        let res = app.post(&path("test-send"), body.clone()).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{body}");
    }
    let text = app
        .client
        .post(format!("{}{}", app.base, path("test-send")))
        .header("x-api-key", &app.write_key)
        .header("content-type", "text/plain")
        .body("go")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let read = app.call(Method::POST, &path("test-send"), Some(&app.read_key), Some(json!({}))).await;
    assert_problem(&read, StatusCode::FORBIDDEN, "forbidden");
    assert_problem(&app.get("/v2/actions/act_01m81heykw99vxnkrsn2930z34").await, StatusCode::NOT_FOUND, "not_found");
    let empty = app
        .client
        .post(format!("{}{}", app.base, path("test-send")))
        .header("x-api-key", &app.write_key)
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::ACCEPTED, "no body means no parameters");
}
