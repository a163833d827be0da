use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{assert_problem, new_org, spawn_app};

fn types(res: &crate::Resp) -> Vec<String> {
    res.body["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

const INGRESS: [&str; 10] = [
    "MQTT",
    "AWS_SQS",
    "GCP_PUBSUB",
    "AZURE_EVENT_HUBS",
    "PARTICLE",
    "WEBSOCKET",
    "HTTP_INBOUND",
    "HTTP_POLL",
    "WEATHER",
    "UTILITY_DATA",
];
const EGRESS: [&str; 12] = [
    "WEBHOOK",
    "EMAIL",
    "SMS",
    "PHONE",
    "AWS_SNS",
    "AWS_SQS",
    "GCP_PUBSUB",
    "AZURE_EVENT_HUBS",
    "MQTT",
    "NATS",
    "AMQP",
    "KAFKA",
];

/// The types that work end to end (each passes the connector checks in `connectors/`).
const WORKING: &[&str] = &[
    "WEBHOOK",
    "MQTT",
    "HTTP_INBOUND",
    "HTTP_POLL",
    "WEBSOCKET",
    "PARTICLE",
    "WEATHER",
    "UTILITY_DATA",
    "AMQP",
    "NATS",
    "AWS_SNS",
    "AWS_SQS",
    "GCP_PUBSUB",
    "AZURE_EVENT_HUBS",
    "KAFKA",
    "EMAIL",
    "SMS",
    "PHONE",
];

#[tokio::test]
async fn the_catalog_lists_every_type_and_offers_only_what_runs() {
    let app = spawn_app().await;
    let all = app.get("/v2/integrations/catalog").await;
    assert_eq!(all.status, StatusCode::OK);
    let listed = types(&all);
    for t in INGRESS.iter().chain(EGRESS.iter()) {
        assert!(listed.contains(&t.to_string()), "{t} missing from the catalog");
    }
    assert_eq!(types(&app.get("/v2/integrations/catalog?availability=available").await), WORKING);
    let ingress = types(&app.get("/v2/integrations/catalog?direction=INGRESS").await);
    assert_eq!(ingress.len(), INGRESS.len());
    let egress_disabled = app.get("/v2/integrations/catalog?direction=EGRESS&availability=disabled").await;
    assert_eq!(types(&egress_disabled).len(), EGRESS.len() - WORKING.iter().filter(|t| EGRESS.contains(t)).count());
    assert!(egress_disabled.body["data"].as_array().unwrap().iter().all(|e| e["availability"] == "disabled"));
    assert_eq!(types(&app.get("/v2/integrations/catalog?q=pub/sub").await), ["GCP_PUBSUB"]);
    let bad = app.get("/v2/integrations/catalog?availability=maybe").await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(bad.fields(), ["availability"]);
}

#[tokio::test]
async fn custom_types_appear_only_for_enabled_organizations() {
    let app = spawn_app().await;
    assert!(!types(&app.get("/v2/integrations/catalog").await).contains(&"LUA_SCRIPT".to_owned()));
    let hidden = app.get("/v2/integrations/properties?type=LUA_SCRIPT").await;
    assert_problem(&hidden, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let (_, key) = new_org(&*app.store, "Enabled", true).await;
    let res = app.call(Method::GET, "/v2/integrations/catalog", Some(&key), None).await;
    let data = res.body["data"].as_array().unwrap();
    let custom: Vec<&Value> = data.iter().filter(|e| e["category"] == "custom").collect();
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0]["type"], "LUA_SCRIPT");
    assert_eq!(custom[0]["section"], "Custom Integrations");
    assert_eq!(data.last().unwrap()["category"], "custom", "custom types are grouped after the standard ones");
}

#[tokio::test]
async fn property_specs_per_type_and_direction() {
    let app = spawn_app().await;
    let webhook = app.get("/v2/integrations/properties?type=WEBHOOK").await;
    assert_eq!(webhook.status, StatusCode::OK);
    let directions = webhook.body["directions"].as_array().unwrap();
    assert_eq!(directions.len(), 1);
    assert_eq!(directions[0]["direction"], "EGRESS");
    let props = directions[0]["properties"].as_array().unwrap();
    let url = props.iter().find(|p| p["name"] == "url").unwrap();
    assert_eq!(
        (url["kind"].as_str(), url["required"].as_bool(), url["editable"].as_bool()),
        (Some("url"), Some(true), Some(true))
    );
    let password = props.iter().find(|p| p["name"] == "password").unwrap();
    assert_eq!(password["secret"], true);
    assert_eq!(password["requiredWhen"]["property"], "authType");
    let auth = props.iter().find(|p| p["name"] == "authType").unwrap();
    assert_eq!(auth["options"], serde_json::json!(["NONE", "BASIC", "DIGEST", "BEARER"]));

    let mqtt = app.get("/v2/integrations/properties?type=MQTT").await;
    assert_eq!(mqtt.body["directions"].as_array().unwrap().len(), 2);
    let egress = app.get("/v2/integrations/properties?type=MQTT&direction=EGRESS").await;
    assert_eq!(egress.body["directions"][0]["availability"], "available");
    let ingress = app.get("/v2/integrations/properties?type=MQTT&direction=INGRESS").await;
    assert_eq!(ingress.body["directions"][0]["availability"], "available");
    assert!(egress.body["directions"][0]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "topicTemplate"));

    for (query, field) in [("type=NOPE", "type"), ("", "type"), ("type=WEBHOOK&direction=INGRESS", "direction")] {
        let res = app.get(&format!("/v2/integrations/properties?{query}")).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field], "{query}");
    }
}

#[tokio::test]
async fn supported_types_per_direction() {
    let app = spawn_app().await;
    let res = app.get("/v2/integrations/mapping").await;
    assert_eq!(res.status, StatusCode::OK);
    let keys = |d: &str| -> Vec<String> {
        res.body[d].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(keys("INGRESS").len(), INGRESS.len());
    assert_eq!(keys("EGRESS").len(), EGRESS.len());
    let webhook = res.body["EGRESS"].as_array().unwrap().iter().find(|t| t["type"] == "WEBHOOK").unwrap();
    assert_eq!(webhook["available"], true);
}
