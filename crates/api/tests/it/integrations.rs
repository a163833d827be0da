use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{assert_problem, spawn_app, spawn_app_on_postgres, App};

async fn create_update_delete(app: &App) {
    let (_, _, device_path) = app.place_and_device("meter").await;
    let created = app
        .post(
            "/v2/integrations",
            json!({
                "name": "  Ops webhook ",
                "type": "WEBHOOK",
                "properties": {"url": "https://hooks.example.test/in", "valuesRoute": "/values", "authType": "BASIC",
                               "username": "ops", "password": "pa55-word-0001", "headers": ["X-Team: ops"]},
                "metadata": {"owner": "ops"},
                "resourcePaths": [device_path],
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let body = &created.body;
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("int_"));
    assert_eq!(body["name"], "Ops webhook", "names are trimmed");
    assert_eq!(body["direction"], "EGRESS", "the direction follows from the type");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["properties"]["method"], "POST", "defaults are filled in");
    assert_eq!(body["properties"]["timeoutSeconds"], 15);
    assert_eq!(body["secretsSet"], json!(["password", "secret"]), "the signing secret is generated");
    assert!(body["properties"].get("password").is_none());
    let generated = body["generatedSecrets"]["secret"].as_str().unwrap().to_owned();
    assert!(generated.starts_with("whsec_"));
    assert_eq!(body["resourcePaths"], json!([device_path]));
    let mut shown_once = created.body.clone();
    shown_once.as_object_mut().unwrap().remove("generatedSecrets");
    assert_eq!(
        app.get(&format!("/v2/integrations/{id}")).await.body,
        shown_once,
        "the generated secret is shown only once"
    );

    let updated = app
        .put(
            &format!("/v2/integrations/{id}"),
            json!({"name": "Renamed", "enabled": false, "properties": {"method": "PUT"}, "metadata": {"owner": "noc"}}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["name"], "Renamed");
    assert_eq!(updated.body["enabled"], false);
    assert_eq!(updated.body["properties"]["method"], "PUT");
    assert_eq!(updated.body["properties"]["valuesRoute"], "/values", "omitted properties are kept");
    assert_eq!(updated.body["secretsSet"], json!(["password", "secret"]), "omitted secrets are kept");
    assert_eq!(updated.body["metadata"], json!({"owner": "noc"}));

    // Clearing a secret the configuration needs is refused; switching auth off and clearing works.
    let refused = app.put(&format!("/v2/integrations/{id}"), json!({"properties": {"password": null}})).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(refused.fields(), ["properties.password"]);
    let cleared = app
        .put(
            &format!("/v2/integrations/{id}"),
            json!({"properties": {"authType": "NONE", "username": null, "password": null}}),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{:?}", cleared.body);
    assert_eq!(cleared.body["secretsSet"], json!(["secret"]));

    for (body, field) in [
        (json!({"type": "SMS"}), "type"),
        (json!({"direction": "INGRESS"}), "direction"),
        (json!({"name": " "}), "name"),
        (json!({"properties": {"url": "not a url"}}), "properties.url"),
        (json!({"resourcePaths": ["/places/nope"]}), "resourcePaths[0]"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let res = app.put(&format!("/v2/integrations/{id}"), body.clone()).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{body}");
    }
    assert_eq!(app.get(&format!("/v2/integrations/{id}")).await.body, cleared.body, "refused updates change nothing");

    assert_eq!(app.delete(&format!("/v2/integrations/{id}")).await.status, StatusCode::NO_CONTENT);
    assert_problem(&app.get(&format!("/v2/integrations/{id}")).await, StatusCode::NOT_FOUND, "not_found");
    assert_problem(&app.delete(&format!("/v2/integrations/{id}")).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn create_read_update_delete_on_sqlite() {
    create_update_delete(&spawn_app().await).await;
}

#[tokio::test]
async fn create_read_update_delete_on_postgres() {
    create_update_delete(&spawn_app_on_postgres().await).await;
}

#[tokio::test]
async fn invalid_creates_name_each_field_and_store_nothing() {
    let app = spawn_app().await;
    let url = json!({"url": "https://example.test"});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"type": "WEBHOOK"}), vec!["name"]),
        (json!({"name": "x"}), vec!["type"]),
        (json!({"name": 5, "type": "WEBHOOK"}), vec!["name"]),
        (json!({"name": "x", "type": "NOPE"}), vec!["type"]),
        (json!({"name": "x", "type": "LUA_SCRIPT", "direction": "EGRESS"}), vec!["type"]),
        // Both available: the direction must be said.
        (json!({"name": "x", "type": "MQTT"}), vec!["direction"]),
        (json!({"name": "x", "type": "AZURE_EVENT_HUBS"}), vec!["direction"]),
        (
            json!({"name": "x", "type": "AZURE_EVENT_HUBS", "direction": "INGRESS",
                   "properties": {"startPosition": "enqueuedTime", "startEnqueuedTime": "yesterday"}}),
            vec!["properties.connectionString", "properties.externalIdFrom", "properties.startEnqueuedTime"],
        ),
        (json!({"name": "x", "type": "WEBHOOK", "direction": "INGRESS"}), vec!["direction"]),
        (json!({"name": "x", "type": "WEBHOOK", "direction": "SIDEWAYS"}), vec!["direction"]),
        (json!({"name": "x", "type": "WEBHOOK"}), vec!["properties.url"]),
        (json!({"name": "x", "type": "WEBHOOK", "properties": {"url": "ftp://x.test"}}), vec!["properties.url"]),
        (
            json!({"name": "x", "type": "WEBHOOK", "properties": {"url": "https://x.test", "method": "GET", "timeoutSeconds": 0,
                   "batchSize": "ten", "headers": "X: y", "bodyTemplate": "{% if %}", "nope": true}}),
            vec![
                "properties.batchSize",
                "properties.bodyTemplate",
                "properties.headers",
                "properties.method",
                "properties.nope",
                "properties.timeoutSeconds",
            ],
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "properties": {"url": "https://x.test", "authType": "BEARER"}}),
            vec!["properties.token"],
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "properties": url, "metadata": {"k": "v".repeat(2000)}}),
            vec!["metadata.k"],
        ),
        (json!({"name": "x", "type": "WEBHOOK", "properties": url, "metadata": {"k": 1}}), vec!["metadata.k"]),
        (json!({"name": "x", "type": "WEBHOOK", "properties": url, "resourcePaths": ["/"]}), vec!["resourcePaths[0]"]),
        (
            json!({"name": "x", "type": "WEBHOOK", "properties": url,
                   "resourcePaths": ["/places/plc_01m81heykw99vxnkrsn2930z34"]}),
            vec!["resourcePaths[0]"],
        ),
        (json!({"name": "x", "type": "WEBHOOK", "properties": url, "colour": "red"}), vec!["colour"]),
        (
            json!({"name": "x", "type": "WEBHOOK", "properties": {"url": "https://x.test", "valuesRoute": "/v\r\nX-Injected: 1",
                   "eventsRoute": "/e?x=1", "alarmsRoute": "/alarms"}}),
            vec!["properties.eventsRoute", "properties.valuesRoute"],
        ),
        // A short template that would render for minutes (and hundreds of MB) is refused at create.
        (
            json!({"name": "x", "type": "WEBHOOK", "properties": {"url": "https://x.test",
                   "bodyTemplate": "{% for a in range(1000) %}{% for b in range(1000) %}{{ record }}{% endfor %}{% endfor %}"}}),
            vec!["properties.bodyTemplate"],
        ),
        (
            json!({"name": "x", "type": "MQTT", "direction": "EGRESS", "properties": {"host": "broker.test",
                   "topicTemplate": "{{ 'x' * 20000000 }}"}}),
            vec!["properties.topicTemplate"],
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "properties": url,
                   "resourcePaths": vec!["/places/plc_01m81heykw99vxnkrsn2930z34"; 10_000]}),
            vec!["resourcePaths"],
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "properties": url, "metadata": {"k".repeat(200): "v"}}),
            vec!["metadata"],
        ),
        (json!({"name": "x".repeat(201), "type": "WEBHOOK", "properties": url}), vec!["name"]),
    ];
    for (body, expected) in cases {
        let res = app.post("/v2/integrations", body.clone()).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let mut fields = res.fields();
        fields.sort();
        assert_eq!(fields, expected, "{body} -> {:?}", res.body);
    }
    // A repeated key is reported on that key.
    let res = app
        .client
        .post(format!("{}/v2/integrations", app.base))
        .header("x-api-key", &app.write_key)
        .header("content-type", "application/json")
        .body(r#"{"name": "x", "type": "WEBHOOK", "name": "y", "properties": {"url": "https://x.test"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "name", "{body}");
    assert_eq!(app.get("/v2/integrations").await.body["data"], json!([]), "nothing half-written is stored");
}

#[tokio::test]
async fn bodies_must_be_json_and_not_too_large() {
    let app = spawn_app().await;
    let url = format!("{}/v2/integrations", app.base);
    let text =
        app.client.post(&url).header("x-api-key", &app.write_key).header("content-type", "text/plain").body("{}");
    let res = text.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let broken = app
        .client
        .post(&url)
        .header("x-api-key", &app.write_key)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);

    let huge = json!({"name": "x", "type": "WEBHOOK", "properties": {"url": "https://x.test"}, "metadata": {"pad": "p".repeat(1100 * 1024)}});
    let res = app.post("/v2/integrations", huge).await;
    assert_problem(&res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(app.get("/v2/integrations").await.body["data"], json!([]));
}

#[tokio::test]
async fn lists_filter_and_page() {
    let app = spawn_app().await;
    let mut ids = vec![];
    for name in ["Alpha hook", "Beta hook", "Gamma relay", "Delta relay", "Epsilon"] {
        ids.push(app.webhook(name).await["id"].as_str().unwrap().to_owned());
    }
    app.put(&format!("/v2/integrations/{}", ids[1]), json!({"enabled": false})).await;

    let names = |res: &crate::Resp| -> Vec<String> {
        res.body["data"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&app.get("/v2/integrations?q=RELAY").await), ["Gamma relay", "Delta relay"]);
    assert_eq!(names(&app.get("/v2/integrations?enabled=false").await), ["Beta hook"]);
    assert_eq!(
        app.get("/v2/integrations?type=WEBHOOK&direction=EGRESS").await.body["data"].as_array().unwrap().len(),
        5
    );
    assert_eq!(app.get("/v2/integrations?direction=INGRESS").await.body["data"], json!([]));

    let mut seen = vec![];
    let mut path = "/v2/integrations?limit=2".to_owned();
    loop {
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        seen.extend(page.body["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page.body["nextCursor"].as_str() {
            Some(c) => path = format!("/v2/integrations?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=500", "limit"),
        ("limit=x", "limit"),
        ("cursor=%25%25", "cursor"),
        ("direction=UP", "direction"),
        ("enabled=maybe", "enabled"),
    ] {
        let res = app.get(&format!("/v2/integrations?{query}")).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{query}");
    }
}

#[tokio::test]
async fn secrets_are_never_returned() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/v2/integrations",
            json!({"name": "s", "type": "WEBHOOK", "properties": {"url": "https://x.test", "authType": "BEARER",
                   "token": "tok-SECRET-123456", "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"}}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap();
    let updated =
        app.put(&format!("/v2/integrations/{id}"), json!({"properties": {"token": "tok-SECRET-654321"}})).await;
    let responses = [
        created.body.to_string(),
        updated.body.to_string(),
        app.get(&format!("/v2/integrations/{id}")).await.body.to_string(),
        app.get("/v2/integrations").await.body.to_string(),
    ];
    for text in responses {
        for secret in ["tok-SECRET-123456", "tok-SECRET-654321", "C2FVsBQIhrscChlQIMV"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("secretsSet"));
    }
    assert_eq!(updated.body["secretsSet"], json!(["secret", "token"]));
    // The store holds the new value (for the connector), not the old one.
    let stored = app.store.get_integration(&app.org.id, &id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.secrets["token"].expose(), "tok-SECRET-654321");
}

#[tokio::test]
async fn resource_mappings() {
    let app = spawn_app().await;
    let hook = app.webhook("hook").await;
    let id = hook["id"].as_str().unwrap();
    let (place, _device, device_path) = app.place_and_device("meter").await;

    let created = app
        .post("/v2/integrations/resource-mappings", json!({"integrationId": id, "externalId": " sensor-9 ", "resourcePath": device_path, "deviceType": "meter"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert!(created.body["id"].as_str().unwrap().starts_with("rm_"));
    assert_eq!(created.body["externalId"], "sensor-9");
    assert_eq!(created.body["resourceType"], "device");
    assert_eq!(created.body["resourcePath"], device_path);

    let duplicate = app
        .post(
            "/v2/integrations/resource-mappings",
            json!({"integrationId": id, "externalId": "sensor-9", "resourcePath": format!("/places/{place}")}),
        )
        .await;
    assert_problem(&duplicate, StatusCode::CONFLICT, "conflict");
    assert!(duplicate.body["detail"].as_str().unwrap().contains("sensor-9"));

    let to_place = app
        .post(
            "/v2/integrations/resource-mappings",
            json!({"integrationId": id, "externalId": "site", "resourcePath": format!("/places/{place}")}),
        )
        .await;
    assert_eq!(to_place.status, StatusCode::CREATED);
    assert_eq!(to_place.body["resourceType"], "place");

    for (body, field) in [
        (json!({"integrationId": id, "externalId": "", "resourcePath": device_path}), "externalId"),
        (json!({"integrationId": id, "externalId": "a", "resourcePath": "/things/1"}), "resourcePath"),
        (json!({"integrationId": id, "externalId": "a", "resourcePath": "/"}), "resourcePath"),
        (
            json!({"integrationId": id, "externalId": "a", "resourcePath": format!("/places/{place}/devices/dev_01m81heykw99vxnkrsn2930z34")}),
            "resourcePath",
        ),
        (
            json!({"integrationId": id, "externalId": "a", "resourcePath": device_path, "deviceType": "inverter"}),
            "deviceType",
        ),
        (
            json!({"integrationId": id, "externalId": "a", "resourcePath": format!("/places/{place}"), "deviceType": "meter"}),
            "deviceType",
        ),
        (json!({"integrationId": id, "resourcePath": device_path}), "externalId"),
    ] {
        let res = app.post("/v2/integrations/resource-mappings", body.clone()).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{body}");
    }
    let missing = app
        .post(
            "/v2/integrations/resource-mappings",
            json!({"integrationId": "int_01m81heykw99vxnkrsn2930z34", "externalId": "a", "resourcePath": device_path}),
        )
        .await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "not_found");

    let listed = app.get(&format!("/v2/integrations/{id}/resource-mappings?limit=1")).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    let cursor = listed.body["nextCursor"].as_str().unwrap();
    let rest = app.get(&format!("/v2/integrations/{id}/resource-mappings?limit=1&cursor={cursor}")).await;
    assert_eq!(rest.body["data"][0]["externalId"], "site");
    assert_eq!(rest.body["nextCursor"], Value::Null);

    let mapping_id = created.body["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v2/integrations/resource-mappings/{mapping_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_problem(
        &app.delete(&format!("/v2/integrations/resource-mappings/{mapping_id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Deleting the integration deletes its mappings: the place can then be emptied and deleted.
    assert_eq!(app.delete(&format!("/v2/integrations/{id}")).await.status, StatusCode::NO_CONTENT);
    assert_problem(
        &app.get(&format!("/v2/integrations/{id}/resource-mappings")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let device_id = device_path.rsplit('/').next().unwrap();
    assert_eq!(app.delete(&format!("/v2/devices/{device_id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&format!("/v2/places/{place}")).await.status, StatusCode::NO_CONTENT);
}
