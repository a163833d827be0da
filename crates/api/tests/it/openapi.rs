//! The OpenAPI document must list every route, and every response the
//! server sends must match the schema the document gives for it.
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{spawn_app, Resp};

/// The routes the API promises (the table plus catalog, mapping
/// delete, places and devices).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/v2/integrations"),
    ("post", "/v2/integrations"),
    ("get", "/v2/integrations/{integrationId}"),
    ("put", "/v2/integrations/{integrationId}"),
    ("delete", "/v2/integrations/{integrationId}"),
    ("get", "/v2/integrations/mapping"),
    ("get", "/v2/integrations/properties"),
    ("get", "/v2/integrations/validate-path"),
    ("get", "/v2/integrations/resources"),
    ("get", "/v2/integrations/{integrationId}/resource-mappings"),
    ("post", "/v2/integrations/resource-mappings"),
    ("delete", "/v2/integrations/resource-mappings/{mappingId}"),
    ("get", "/v2/integrations/catalog"),
    ("get", "/v2/places"),
    ("post", "/v2/places"),
    ("get", "/v2/places/{placeId}"),
    ("put", "/v2/places/{placeId}"),
    ("delete", "/v2/places/{placeId}"),
    ("get", "/v2/devices"),
    ("post", "/v2/devices"),
    ("get", "/v2/devices/{deviceId}"),
    ("put", "/v2/devices/{deviceId}"),
    ("delete", "/v2/devices/{deviceId}"),
    ("post", "/v2/telemetry"),
    ("get", "/v2/telemetry"),
    ("get", "/v2/integrations/{integrationId}/messages"),
    ("get", "/v2/integrations/{integrationId}/status-history"),
    ("get", "/v2/integrations/{integrationId}/triggers"),
    ("post", "/v2/integrations/{integrationId}/triggers"),
    ("get", "/v2/integrations/{integrationId}/triggers/{triggerId}"),
    ("put", "/v2/integrations/{integrationId}/triggers/{triggerId}"),
    ("delete", "/v2/integrations/{integrationId}/triggers/{triggerId}"),
    ("get", "/v2/integrations/{integrationId}/deliveries"),
    ("get", "/v2/deliveries/{deliveryId}"),
    ("post", "/v2/deliveries/{deliveryId}/resend"),
    ("post", "/v2/integrations/{integrationId}/actions/{action}"),
    ("get", "/v2/actions/{actionId}"),
    ("get", "/v2/actions"),
    ("post", "/v2/actions/{actionId}/cancel"),
    ("get", "/v2/globals"),
    ("put", "/v2/globals"),
    ("get", "/v2/integrations/{integrationId}/recipients"),
    ("post", "/v2/integrations/{integrationId}/recipients"),
    ("get", "/v2/integrations/{integrationId}/recipients/{recipientId}"),
    ("delete", "/v2/integrations/{integrationId}/recipients/{recipientId}"),
    ("post", "/v2/integrations/{integrationId}/recipients/{recipientId}/verify"),
    ("post", "/v2/integrations/{integrationId}/recipients/{recipientId}/send-code"),
];

/// Routes a caller reaches without an API key: it proves who it is as the
/// integration says (HTTP inbound's token or signature).
const KEYLESS: &[(&str, &str)] =
    &[("post", "/v2/inbound/{integrationId}"), ("post", "/v2/inbound/{integrationId}/{path}")];

/// Objects in the document's schemas that list their properties get
/// `additionalProperties: false`, so a field the server sends but the
/// document does not describe is drift too.
fn strict(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

struct Contract {
    doc: Value,
    components: Value,
}

impl Contract {
    async fn fetch(app: &crate::App) -> Self {
        let doc: Value =
            app.client.get(format!("{}/v2/openapi.json", app.base)).send().await.unwrap().json().await.unwrap();
        let mut components = doc["components"].clone();
        strict(&mut components);
        Self { doc, components }
    }

    /// Asserts the document describes this response (status and content
    /// type) and that the body fits the schema given for it.
    fn check(&self, method: &str, template: &str, res: &Resp) {
        let op = &self.doc["paths"][template][method];
        assert!(op.is_object(), "{method} {template} is missing from the OpenAPI document");
        let response = &op["responses"][res.status.as_str()];
        assert!(response.is_object(), "{method} {template} answered {} which the document does not list", res.status);
        let Some(content) = response["content"].as_object() else {
            assert_eq!(res.body, Value::Null, "{method} {template} {}: undocumented body", res.status);
            return;
        };
        let media = res.content_type.split(';').next().unwrap();
        let schema = content
            .get(media)
            .unwrap_or_else(|| panic!("{method} {template} {}: content type {media} not documented", res.status))
            .get("schema")
            .unwrap();
        let mut root = schema.clone();
        strict(&mut root);
        root.as_object_mut().unwrap().insert("components".into(), self.components.clone());
        let validator = jsonschema::draft202012::new(&root).expect("the document's schema compiles");
        let errors: Vec<String> =
            validator.iter_errors(&res.body).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {}: the body does not match the schema: {errors:#?}\n{}",
            res.status,
            res.body
        );
    }
}

#[tokio::test]
async fn every_route_is_documented_once_with_a_unique_operation_id() {
    let app = spawn_app().await;
    let contract = Contract::fetch(&app).await;
    assert_eq!(contract.doc["openapi"], "3.1.0");
    let mut operation_ids = std::collections::HashSet::new();
    for (method, path) in ROUTES {
        let op = &contract.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is missing from /v2/openapi.json");
        assert!(
            operation_ids.insert(op["operationId"].as_str().unwrap().to_owned()),
            "duplicate operationId at {method} {path}"
        );
        assert_eq!(op["security"][0]["apiKey"], json!([]), "{method} {path} must declare the API key");
    }
    for (method, path) in KEYLESS {
        let op = &contract.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is missing from /v2/openapi.json");
        assert!(operation_ids.insert(op["operationId"].as_str().unwrap().to_owned()));
        assert!(op.get("security").is_none(), "{method} {path} takes no API key");
        assert!(op["responses"].get("403").is_none(), "{method} {path}: no key, no scope to lack");
    }
    let documented: usize =
        contract.doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, ROUTES.len() + KEYLESS.len(), "the document lists routes this test does not know");
}

#[tokio::test]
async fn responses_match_their_documented_schemas() {
    let app = spawn_app().await;
    let c = Contract::fetch(&app).await;
    let w = Some(app.write_key.as_str());
    let call = |m: Method, p: String, b: Option<Value>| {
        let app = &app;
        async move { app.call(m, &p, w, b).await }
    };

    // The whole wizard, each response checked against the document.
    c.check("get", "/v2/integrations/catalog", &call(Method::GET, "/v2/integrations/catalog".into(), None).await);
    c.check("get", "/v2/integrations/mapping", &call(Method::GET, "/v2/integrations/mapping".into(), None).await);
    c.check(
        "get",
        "/v2/integrations/properties",
        &call(Method::GET, "/v2/integrations/properties?type=MQTT".into(), None).await,
    );
    c.check(
        "get",
        "/v2/integrations/properties",
        &call(Method::GET, "/v2/integrations/properties?type=X".into(), None).await,
    );

    let place = call(Method::POST, "/v2/places".into(), Some(json!({"name": "P", "metadata": {"a": "b"}}))).await;
    c.check("post", "/v2/places", &place);
    let place_id = place.body["id"].as_str().unwrap().to_owned();
    c.check("get", "/v2/places", &call(Method::GET, "/v2/places".into(), None).await);
    c.check("get", "/v2/places/{placeId}", &call(Method::GET, format!("/v2/places/{place_id}"), None).await);
    c.check(
        "put",
        "/v2/places/{placeId}",
        &call(Method::PUT, format!("/v2/places/{place_id}"), Some(json!({"name": "Q"}))).await,
    );
    let device = call(
        Method::POST,
        "/v2/devices".into(),
        Some(json!({"name": "D", "placeId": place_id, "deviceType": "meter"})),
    )
    .await;
    c.check("post", "/v2/devices", &device);
    let device_id = device.body["id"].as_str().unwrap().to_owned();
    let device_path = format!("/places/{place_id}/devices/{device_id}");
    c.check("get", "/v2/devices", &call(Method::GET, "/v2/devices".into(), None).await);
    c.check("get", "/v2/devices/{deviceId}", &call(Method::GET, format!("/v2/devices/{device_id}"), None).await);
    c.check(
        "put",
        "/v2/devices/{deviceId}",
        &call(Method::PUT, format!("/v2/devices/{device_id}"), Some(json!({"name": "E"}))).await,
    );

    c.check(
        "get",
        "/v2/integrations/validate-path",
        &call(Method::GET, format!("/v2/integrations/validate-path?path={device_path}"), None).await,
    );
    c.check(
        "get",
        "/v2/integrations/validate-path",
        &call(Method::GET, "/v2/integrations/validate-path?path=/x".into(), None).await,
    );
    c.check(
        "get",
        "/v2/integrations/resources",
        &call(Method::GET, format!("/v2/integrations/resources?path=/places/{place_id}"), None).await,
    );

    let created = call(
        Method::POST,
        "/v2/integrations".into(),
        Some(json!({"name": "W", "type": "WEBHOOK", "properties": {"url": "https://x.test", "authType": "BEARER", "token": "t"},
                    "metadata": {"k": "v"}, "resourcePaths": [device_path]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    c.check("post", "/v2/integrations", &created);
    let id = created.body["id"].as_str().unwrap().to_owned();
    c.check(
        "post",
        "/v2/integrations",
        &call(Method::POST, "/v2/integrations".into(), Some(json!({"name": ""}))).await,
    );
    c.check("get", "/v2/integrations", &call(Method::GET, "/v2/integrations?limit=1".into(), None).await);
    c.check(
        "get",
        "/v2/integrations/{integrationId}",
        &call(Method::GET, format!("/v2/integrations/{id}"), None).await,
    );
    c.check(
        "put",
        "/v2/integrations/{integrationId}",
        &call(Method::PUT, format!("/v2/integrations/{id}"), Some(json!({"enabled": false}))).await,
    );

    let mapping = call(
        Method::POST,
        "/v2/integrations/resource-mappings".into(),
        Some(json!({"integrationId": id, "externalId": "e", "resourcePath": device_path, "deviceType": "meter"})),
    )
    .await;
    c.check("post", "/v2/integrations/resource-mappings", &mapping);
    let dup = call(
        Method::POST,
        "/v2/integrations/resource-mappings".into(),
        Some(json!({"integrationId": id, "externalId": "e", "resourcePath": device_path})),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    c.check("post", "/v2/integrations/resource-mappings", &dup);
    c.check(
        "get",
        "/v2/integrations/{integrationId}/resource-mappings",
        &call(Method::GET, format!("/v2/integrations/{id}/resource-mappings"), None).await,
    );
    let mapping_id = mapping.body["id"].as_str().unwrap();
    c.check(
        "delete",
        "/v2/integrations/resource-mappings/{mappingId}",
        &call(Method::DELETE, format!("/v2/integrations/resource-mappings/{mapping_id}"), None).await,
    );

    // An ingress integration (disabled: it connects nowhere), its log and status, and records read back.
    let ingress = call(
        Method::POST,
        "/v2/integrations".into(),
        Some(json!({"name": "B", "type": "MQTT", "direction": "INGRESS", "enabled": false,
                    "properties": {"host": "127.0.0.1", "topics": ["a/+"], "externalIdFrom": "topic:1"}})),
    )
    .await;
    c.check("post", "/v2/integrations", &ingress);
    let ingress = ingress.body["id"].as_str().unwrap().to_owned();
    c.check(
        "get",
        "/v2/integrations/{integrationId}",
        &call(Method::GET, format!("/v2/integrations/{ingress}"), None).await,
    );
    for path in ["messages?outcome=stored", "status-history"] {
        let template = format!("/v2/integrations/{{integrationId}}/{}", path.split('?').next().unwrap());
        c.check("get", &template, &call(Method::GET, format!("/v2/integrations/{ingress}/{path}"), None).await);
        c.check("get", &template, &call(Method::GET, format!("/v2/integrations/{id}/{path}"), None).await);
    }
    let posted = call(
        Method::POST,
        "/v2/telemetry".into(),
        Some(json!({"records": [{"kind": "value", "deviceId": device_id, "property": "p", "timestamp": 5, "payload": 1}]})),
    )
    .await;
    assert_eq!(posted.status, StatusCode::ACCEPTED, "{:?}", posted.body);
    let read = call(Method::GET, format!("/v2/telemetry?deviceId={device_id}&kind=value&limit=5"), None).await;
    assert_eq!(read.body["data"][0]["source"]["kind"], "apiKey", "{:?}", read.body);
    c.check("get", "/v2/telemetry", &read);
    c.check("get", "/v2/telemetry", &call(Method::GET, "/v2/telemetry?deviceId=nope".into(), None).await);

    let busy = call(Method::DELETE, format!("/v2/places/{place_id}"), None).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    c.check("delete", "/v2/places/{placeId}", &busy);
    c.check(
        "delete",
        "/v2/integrations/{integrationId}",
        &call(Method::DELETE, format!("/v2/integrations/{id}"), None).await,
    );
    c.check("delete", "/v2/devices/{deviceId}", &call(Method::DELETE, format!("/v2/devices/{device_id}"), None).await);
    c.check("delete", "/v2/places/{placeId}", &call(Method::DELETE, format!("/v2/places/{place_id}"), None).await);
    c.check(
        "get",
        "/v2/integrations/{integrationId}",
        &call(Method::GET, format!("/v2/integrations/{id}"), None).await,
    );
    c.check("get", "/v2/integrations", &app.call(Method::GET, "/v2/integrations", None, None).await);
    c.check(
        "post",
        "/v2/places",
        &app.call(Method::POST, "/v2/places", Some(&app.read_key), Some(json!({"name": "x"}))).await,
    );

    // Recipients of a notification integration.
    let mail = call(
        Method::POST,
        "/v2/integrations".into(),
        Some(json!({"name": "M", "type": "EMAIL", "properties": {"smtpHost": "smtp.x.test", "from": "a@x.test"}})),
    )
    .await;
    assert_eq!(mail.status, StatusCode::CREATED, "{:?}", mail.body);
    let mail = mail.body["id"].as_str().unwrap().to_owned();
    let list = format!("/v2/integrations/{mail}/recipients");
    let added = call(Method::POST, list.clone(), Some(json!({"address": "ops@x.test", "name": "Ops"}))).await;
    c.check("post", "/v2/integrations/{integrationId}/recipients", &added);
    c.check(
        "post",
        "/v2/integrations/{integrationId}/recipients",
        &call(Method::POST, list.clone(), Some(json!({"address": "nope"}))).await,
    );
    c.check("get", "/v2/integrations/{integrationId}/recipients", &call(Method::GET, list.clone(), None).await);
    let one = format!("{list}/{}", added.body["id"].as_str().unwrap());
    c.check(
        "get",
        "/v2/integrations/{integrationId}/recipients/{recipientId}",
        &call(Method::GET, one.clone(), None).await,
    );
    c.check(
        "post",
        "/v2/integrations/{integrationId}/recipients/{recipientId}/verify",
        &call(Method::POST, format!("{one}/verify"), Some(json!({"code": "123456"}))).await,
    );
    c.check(
        "post",
        "/v2/integrations/{integrationId}/recipients/{recipientId}/send-code",
        &call(Method::POST, format!("{one}/send-code"), None).await,
    );
    c.check(
        "delete",
        "/v2/integrations/{integrationId}/recipients/{recipientId}",
        &call(Method::DELETE, one, None).await,
    );
}
