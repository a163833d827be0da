//! The data path end to end: telemetry in, triggers, signed webhook out,
//! retries and the delivery log, against a real HTTP receiver.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::receiver::{value, verify, wait_status, webhook_with_trigger, Answer, Receiver};
use crate::{assert_problem, spawn_configured, Backend};

async fn a_value_is_delivered_signed_and_logged(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(
        &app,
        &rx.url,
        json!({"valuesRoute": "/values"}),
        json!({"kinds": ["value"], "objects": ["power"]}),
    )
    .await;
    assert!(s.secret.starts_with("whsec_"), "a signing secret is generated and shown once");
    let again = app.get(&format!("/v2/integrations/{}", s.integration)).await;
    assert!(again.body.get("generatedSecrets").is_none() && !again.body.to_string().contains(&s.secret));

    let res = app
        .post(
            "/v2/telemetry",
            json!({"records": [value(&s.device, "power", json!(12.5)), value(&s.device, "voltage", json!(230))]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{:?}", res.body);
    assert_eq!(res.body, json!({"accepted": 2, "duplicates": 0, "deliveries": 1}));

    let got = rx.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.path, "/values");
    assert_eq!(r.header("content-type"), "application/json");
    assert!(verify(&s.secret, r), "the signature verifies with the secret shown at create");
    let body = r.json();
    assert_eq!(
        (body["kind"].as_str(), body["property"].as_str(), body["payload"].as_f64()),
        (Some("value"), Some("power"), Some(12.5))
    );
    assert_eq!(body["deviceId"], s.device);
    assert!(body["receivedAt"].as_i64().unwrap() > 0);

    let delivery = wait_status(&app, &s.integration, "succeeded").await;
    assert_eq!(delivery["id"], r.header("webhook-id"), "the webhook-id is the delivery id");
    assert_eq!(delivery["attemptCount"], 1);
    assert_eq!((delivery["status"].as_str(), delivery["success"].as_bool()), (Some("succeeded"), Some(true)));
    assert_eq!(delivery["publishedData"]["property"], "power");
    let attempt = &delivery["attempts"][0];
    assert_eq!((attempt["outcome"].as_str(), attempt["statusCode"].as_u64()), (Some("delivered"), Some(200)));
    assert_eq!(attempt["responseExcerpt"], "receiver says hi");
    assert_eq!(attempt["target"], format!("{}/values", rx.url));
    assert_eq!(rx.settled(Duration::from_millis(200)).await.len(), 1, "voltage matched no trigger");
}

async fn a_rotated_secret_signs_beside_the_new_one(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let old = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let s = webhook_with_trigger(&app, &rx.url, json!({"secret": old}), json!({"kinds": ["value"]})).await;
    assert!(s.secret.is_empty(), "a given secret is not shown back");
    let res = app.put(&format!("/v2/integrations/{}", s.integration), json!({"properties": {"secret": new}})).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.body["secretsSet"], json!(["previousSecret", "secret"]));
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "a", json!(1))]})).await;
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    assert!(verify(old, &got[0]) && verify(new, &got[0]), "receivers on either secret accept it for 24 h");
    let bad =
        app.put(&format!("/v2/integrations/{}", s.integration), json!({"properties": {"secret": "not-whsec"}})).await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(bad.fields(), ["properties.secret"]);
}

async fn a_body_template_renders_the_record_and_globals(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let globals = app.put("/v2/globals", json!({"globals": {"site": "north", "token": "abc"}})).await;
    assert_eq!(globals.status, StatusCode::OK, "{:?}", globals.body);
    assert_eq!(
        app.get("/v2/globals").await.body,
        json!({"globals": {"site": "north", "token": "abc"}, "secretsSet": []})
    );
    let template =
        r#"{"site": "{{ globals.site }}", "object": "{{ record.property }}", "value": {{ record.payload | tojson }}}"#;
    let s = webhook_with_trigger(&app, &rx.url, json!({"bodyTemplate": template}), json!({"kinds": ["value"]})).await;
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "power", json!({"kw": 12.5}))]})).await;
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json(), json!({"site": "north", "object": "power", "value": {"kw": 12.5}}));
    assert!(verify(&s.secret, &got[0]), "the signature covers the rendered body");
    let logged = wait_status(&app, &s.integration, "succeeded").await;
    assert_eq!(logged["publishedData"], got[0].json(), "the log shows the rendered body that was sent");
    // New globals reach the running sender at once, not at its next periodic check.
    app.put("/v2/globals", json!({"globals": {"site": "south"}})).await;
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "power", json!(1))]})).await;
    assert_eq!(rx.wait_for(2).await[1].json()["site"], "south");
    let bad = app.put("/v2/globals", json!({"globals": {"k": "v".repeat(2000)}})).await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(bad.fields(), ["globals.k"]);
    // A template that fails at render time rejects the delivery with the reason.
    let broken = webhook_with_trigger(
        &app,
        &rx.url,
        json!({"bodyTemplate": "{{ record.payload | nosuchfilter }}"}),
        json!({"kinds": ["event"]}),
    )
    .await;
    app.post("/v2/telemetry", json!({"records": [{"kind": "event", "deviceId": broken.device, "property": "x", "timestamp": 1, "payload": 1}]})).await;
    let dead = wait_status(&app, &broken.integration, "dead").await;
    assert!(dead["attempts"][0]["error"].as_str().unwrap().contains("bodyTemplate"), "{dead}");
}

async fn batches_carry_several_records_per_request(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(
        &app,
        &rx.url,
        json!({"batchSize": 5, "batchLingerMs": 300, "valuesRoute": "/values"}),
        json!({"kinds": ["value"]}),
    )
    .await;
    let records: Vec<Value> = (0..12).map(|i| value(&s.device, "power", json!(i))).collect();
    app.post("/v2/telemetry", json!({"records": records})).await;
    let mut payloads = Vec::new();
    let mut requests = 0;
    for _ in 0..500 {
        let got = rx.received();
        payloads = got
            .iter()
            .flat_map(|r| r.json().as_array().unwrap().clone())
            .map(|v| v["payload"].as_i64().unwrap())
            .collect();
        requests = got.len();
        if payloads.len() >= 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    payloads.sort();
    assert_eq!(payloads, (0..12).collect::<Vec<_>>(), "every record, once");
    assert!((3..12).contains(&requests), "batched into at most 5 per request ({requests} requests)");
    for r in rx.received() {
        let ids: Vec<&str> = r.header("switchyard-delivery-ids").split(',').collect();
        assert_eq!(ids.len(), r.json().as_array().unwrap().len(), "one delivery id per record in the batch");
        assert!(r.header("webhook-id").starts_with("bat_"));
        assert!(verify(&s.secret, &r), "a batch is signed over its whole body");
        assert_eq!(r.path, "/values");
    }
    for _ in 0..300 {
        let ok = app.get(&format!("/v2/integrations/{}/deliveries?status=succeeded&limit=50", s.integration)).await;
        if ok.body["data"].as_array().unwrap().len() == 12 {
            // The log shows the batch each delivery went in, as it was sent.
            let one = app.get(&format!("/v2/deliveries/{}", ok.body["data"][0]["id"].as_str().unwrap())).await;
            let sent = rx
                .received()
                .into_iter()
                .find(|r| r.header("switchyard-delivery-ids").contains(ok.body["data"][0]["id"].as_str().unwrap()))
                .unwrap();
            assert_eq!(one.body["publishedData"], sent.json());
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("every delivery of the batches is recorded as succeeded");
}

async fn external_ids_resolve_through_an_ingress_integrations_mappings(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    // Held in the store directly (no receiver runs for it): the path under test is the mapping.
    let ingress = switchyard_core::Integration {
        id: switchyard_core::IntegrationId::new(),
        org_id: app.org.id.clone(),
        name: "broker".into(),
        type_key: "MQTT".into(),
        direction: switchyard_core::Direction::Ingress,
        enabled: true,
        properties: Default::default(),
        secrets: Default::default(),
        metadata: Default::default(),
        resource_paths: vec![],
        created_at: 1,
        updated_at: 1,
    };
    app.store.create_integration(&ingress).await.unwrap();
    let id = ingress.id.to_string();
    let device_path = format!("/places/{}/devices/{}", s.place, s.device);
    for (ext, path) in [("sensor-1", device_path.clone()), ("site-1", format!("/places/{}", s.place))] {
        let m = app
            .post(
                "/v2/integrations/resource-mappings",
                json!({"integrationId": id, "externalId": ext, "resourcePath": path}),
            )
            .await;
        assert_eq!(m.status, StatusCode::CREATED, "{:?}", m.body);
    }
    let by_external = |ext: &str, n: i64| json!({"kind": "value", "integrationId": id, "externalId": ext, "property": "p", "timestamp": 1, "payload": n});
    let res = app
        .post("/v2/telemetry", json!({"records": (0..50).map(|n| by_external("sensor-1", n)).collect::<Vec<_>>()}))
        .await;
    assert_eq!(res.body, json!({"accepted": 50, "duplicates": 0, "deliveries": 50}), "{:?}", res.body);
    let got = rx.wait_for(50).await;
    assert!(got.iter().all(|r| r.json()["deviceId"] == s.device && r.json()["externalId"] == "sensor-1"));
    let keys = app.store.list_keys(&app.org.id).await.unwrap();
    let writer = keys.iter().find(|k| k.scope == switchyard_core::Scope::Write).unwrap();
    let posted = app.get(&format!("/v2/deliveries/{}", got[0].header("webhook-id"))).await;
    assert_eq!(posted.body["recordSource"], json!({"kind": "apiKey", "apiKeyId": writer.id}), "{:?}", posted.body);

    // What the integration itself receives names no integration: its own mappings resolve it.
    let source = switchyard_core::RecordSource::Integration {
        integration_id: ingress.id.clone(),
        message_id: Some("msg-7".into()),
    };
    let own: switchyard_core::RecordDraft = serde_json::from_value(
        json!({"kind": "value", "externalId": "sensor-1", "property": "p", "timestamp": 2, "payload": 51}),
    )
    .unwrap();
    let outcome = app.engine.ingest(&app.org.id, source, vec![own]).await.unwrap();
    assert_eq!((outcome.stored, outcome.deliveries), (1, 1));
    let got = rx.wait_for(51).await;
    let received = got.iter().find(|r| r.json()["payload"] == 51).unwrap();
    let detail = app.get(&format!("/v2/deliveries/{}", received.header("webhook-id"))).await;
    assert_eq!(
        detail.body["recordSource"],
        json!({"kind": "integration", "integrationId": id, "messageId": "msg-7"}),
        "{:?}",
        detail.body
    );
    for (record, field) in
        [(by_external("site-1", 1), "records[0].externalId"), (by_external("nobody", 1), "records[0].externalId")]
    {
        let res = app.post("/v2/telemetry", json!({"records": [record]})).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field]);
    }
}

async fn failures_retry_on_schedule_honour_retry_after_and_end_dead(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![
        Answer(503, vec![("retry-after", "1")], Duration::ZERO),
        Answer(200, vec![], Duration::ZERO),
        Answer(500, vec![], Duration::ZERO),
    ])
    .await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "a", json!(1))]})).await;
    let got = rx.wait_for(2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"), "a retry keeps the delivery id");
    let done = wait_status(&app, &s.integration, "succeeded").await;
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!((attempts[0]["outcome"].as_str(), attempts[0]["statusCode"].as_u64()), (Some("retry"), Some(503)));
    let gap = attempts[1]["startedAt"].as_i64().unwrap() - attempts[0]["startedAt"].as_i64().unwrap();
    assert!((1000..3000).contains(&gap), "Retry-After: 1 was honoured (gap {gap} ms)");

    // A plain 500 is scheduled 5 s (±20 %) later.
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "b", json!(2))]})).await;
    let retrying = wait_status(&app, &s.integration, "retrying").await;
    let first = &retrying["attempts"][0];
    let delay = retrying["nextAttemptAt"].as_i64().unwrap() - first["startedAt"].as_i64().unwrap();
    assert!((3900..6200).contains(&delay), "next attempt in {delay} ms");
    assert_eq!(first["error"], "HTTP 500");
}

async fn rejected_deliveries_are_dead_and_resendable_with_the_same_id(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![Answer(400, vec![], Duration::ZERO)]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["alarm"]})).await;
    let alarm =
        json!({"kind": "alarm", "deviceId": s.device, "property": "overheat", "timestamp": 1, "payload": {"level": 3}});
    app.post("/v2/telemetry", json!({"records": [alarm]})).await;
    let dead = wait_status(&app, &s.integration, "dead").await;
    assert_eq!(dead["attempts"][0]["outcome"], "rejected");
    let id = dead["id"].as_str().unwrap();

    let resent = app.post(&format!("/v2/deliveries/{id}/resend"), json!({})).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{:?}", resent.body);
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].header("webhook-id"), id);
    let ok = wait_status(&app, &s.integration, "succeeded").await;
    assert_eq!(ok["attempts"].as_array().unwrap().len(), 2);
    let again = app.post(&format!("/v2/deliveries/{id}/resend"), json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "a succeeded delivery can be resent too");
    rx.wait_for(3).await;
    assert_problem(
        &app.post("/v2/deliveries/dlv_01m81heykw99vxnkrsn2930z34/resend", json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn gone_disables_the_integration(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![Answer(410, vec![], Duration::ZERO)]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    app.post("/v2/telemetry", json!({"records": [value(&s.device, "a", json!(1))]})).await;
    let dead = wait_status(&app, &s.integration, "dead").await;
    assert!(dead["attempts"][0]["error"].as_str().unwrap().contains("410"));
    for _ in 0..100 {
        if app.get(&format!("/v2/integrations/{}", s.integration)).await.body["enabled"] == false {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("410 Gone must disable the integration");
}

async fn duplicate_record_ids_are_stored_and_delivered_once(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    let mut r = value(&s.device, "a", json!(1));
    r["id"] = json!("reading-1");
    let first = app.post("/v2/telemetry", json!({"records": [r.clone(), r.clone()]})).await;
    assert_eq!(first.body, json!({"accepted": 1, "duplicates": 1, "deliveries": 1}));
    let second = app.post("/v2/telemetry", json!({"records": [r]})).await;
    assert_eq!(second.body, json!({"accepted": 0, "duplicates": 1, "deliveries": 0}));
    rx.wait_for(1).await;
    assert_eq!(rx.settled(Duration::from_millis(300)).await.len(), 1);
}

async fn invalid_batches_name_the_record_and_store_nothing(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["value"]})).await;
    let good = value(&s.device, "a", json!(1));
    for (bad, field) in [
        (json!({"kind": "value", "property": "a", "timestamp": 1, "payload": 1}), "records[1].deviceId"),
        (
            json!({"kind": "reading", "deviceId": s.device, "property": "a", "timestamp": 1, "payload": 1}),
            "records[1].kind",
        ),
        (
            json!({"kind": "value", "deviceId": "dev_01m81heykw99vxnkrsn2930z34", "property": "a", "timestamp": 1, "payload": 1}),
            "records[1].deviceId",
        ),
        (
            json!({"kind": "value", "deviceId": s.device, "property": "", "timestamp": 1, "payload": 1}),
            "records[1].property",
        ),
        (
            json!({"kind": "value", "deviceId": s.device, "property": "a", "timestamp": "now", "payload": 1}),
            "records[1].timestamp",
        ),
        (json!({"kind": "value", "deviceId": s.device, "property": "a", "timestamp": 1}), "records[1].payload"),
        (
            json!({"kind": "value", "externalId": "x", "integrationId": s.integration, "property": "a", "timestamp": 1, "payload": 1}),
            "records[1].integrationId",
        ),
        (
            json!({"kind": "value", "deviceId": s.device, "property": "a", "timestamp": 1, "payload": 1, "receivedAt": -1}),
            "records[1].receivedAt",
        ),
        (
            json!({"kind": "value", "deviceId": s.device, "property": "a\u{0}b", "timestamp": 1, "payload": 1}),
            "records[1].property",
        ),
        (
            json!({"kind": "value", "deviceId": s.device, "property": "a", "timestamp": 1, "payload": 1, "unit": "k\u{0}W"}),
            "records[1].unit",
        ),
    ] {
        let res = app.post("/v2/telemetry", json!({"records": [good.clone(), bad.clone()]})).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{bad}");
    }
    let too_many: Vec<Value> = (0..1001).map(|_| good.clone()).collect();
    assert_eq!(app.post("/v2/telemetry", json!({"records": too_many})).await.fields(), ["records"]);
    assert_eq!(app.post("/v2/telemetry", json!({"records": []})).await.fields(), ["records"]);
    assert!(rx.settled(Duration::from_millis(200)).await.is_empty(), "nothing of a refused batch is stored or sent");
    assert_eq!(app.get(&format!("/v2/integrations/{}/deliveries", s.integration)).await.body["data"], json!([]));
}

async fn triggers_select_by_kind_object_and_scope(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    let rx = Receiver::start(vec![]).await;
    let s = webhook_with_trigger(&app, &rx.url, json!({}), json!({"kinds": ["event"], "objects": ["door_*"]})).await;
    let triggers = app.get(&format!("/v2/integrations/{}/triggers", s.integration)).await;
    let trigger = triggers.body["data"][0]["id"].as_str().unwrap().to_owned();
    let trigger_path = format!("/v2/integrations/{}/triggers/{trigger}", s.integration);
    // Scope: the setup's Place and its subtree.
    let scoped = app.put(&trigger_path, json!({"scope": [format!("/places/{}", s.place)]})).await;
    assert_eq!(scoped.status, StatusCode::OK, "{:?}", scoped.body);
    let wing = app.post("/v2/places", json!({"name": "Wing", "parentId": s.place})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let inner = app.post("/v2/devices", json!({"name": "Door", "placeId": wing, "deviceType": "sensor"})).await.body
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, outside, _) = app.place_and_device("sensor").await;
    let event = |device: &str, property: &str| json!({"kind": "event", "deviceId": device, "property": property, "timestamp": 5, "payload": true});
    let res = app
        .post(
            "/v2/telemetry",
            json!({"records": [event(&inner, "door_open"), event(&outside, "door_open"), event(&inner, "window_open"),
                                value(&inner, "door_open", json!(1)), event(&s.device, "door_closed")]}),
        )
        .await;
    assert_eq!(res.body["deliveries"], 2, "{:?}", res.body);
    let got = rx.wait_for(2).await;
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.json()["deviceId"].as_str().unwrap().to_owned(), r.json()["property"].as_str().unwrap().to_owned()))
        .collect();
    seen.sort();
    let mut expected = vec![(inner.clone(), "door_open".to_owned()), (s.device.clone(), "door_closed".to_owned())];
    expected.sort();
    assert_eq!(seen, expected);

    // Deactivated, the trigger routes nothing; changes apply at once.
    app.put(&trigger_path, json!({"active": false})).await;
    let res = app.post("/v2/telemetry", json!({"records": [event(&inner, "door_open")]})).await;
    assert_eq!(res.body["deliveries"], 0);
    // A disabled integration receives nothing either.
    app.put(&trigger_path, json!({"active": true})).await;
    app.put(&format!("/v2/integrations/{}", s.integration), json!({"enabled": false})).await;
    let res = app.post("/v2/telemetry", json!({"records": [event(&inner, "door_open")]})).await;
    assert_eq!(res.body["deliveries"], 0);

    for (body, field) in [
        (json!({"kinds": []}), "kinds"),
        (json!({"kinds": ["reading"]}), "kinds[0]"),
        (json!({"scope": ["/nowhere"]}), "scope[0]"),
        (json!({"scope": vec![format!("/places/{}", s.place); 10_000]}), "scope"),
        (json!({"objects": [""]}), "objects[0]"),
    ] {
        let res = app.put(&trigger_path, body.clone()).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{body}");
    }
    assert_eq!(app.delete(&trigger_path).await.status, StatusCode::NO_CONTENT);
    assert_problem(&app.get(&trigger_path).await, StatusCode::NOT_FOUND, "not_found");
}

on_both_stores!(
    external_ids_resolve_through_an_ingress_integrations_mappings,
    batches_carry_several_records_per_request,
    a_body_template_renders_the_record_and_globals,
    a_rotated_secret_signs_beside_the_new_one,
    a_value_is_delivered_signed_and_logged,
    failures_retry_on_schedule_honour_retry_after_and_end_dead,
    rejected_deliveries_are_dead_and_resendable_with_the_same_id,
    gone_disables_the_integration,
    duplicate_record_ids_are_stored_and_delivered_once,
    invalid_batches_name_the_record_and_store_nothing,
    triggers_select_by_kind_object_and_scope,
);
