use reqwest::{Method, StatusCode};
use serde_json::json;
use switchyard_core::Scope;

use crate::{assert_problem, new_key, new_org, spawn_app};

#[tokio::test]
async fn requests_without_a_valid_key_are_refused() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/v2/integrations"),
        (Method::POST, "/v2/integrations"),
        (Method::GET, "/v2/integrations/catalog"),
        (Method::GET, "/v2/places"),
        (Method::DELETE, "/v2/devices/dev_01m81heykw99vxnkrsn2930z34"),
    ] {
        let missing = app.call(method.clone(), path, None, Some(json!({}))).await;
        assert_problem(&missing, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(missing.body["detail"].as_str().unwrap().contains("X-Api-Key"));
        let unknown = app.call(method, path, Some("sy_not-a-real-key"), Some(json!({}))).await;
        assert_problem(&unknown, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn read_keys_read_and_only_write_keys_write() {
    let app = spawn_app().await;
    let hook = app.webhook("hook").await;
    let id = hook["id"].as_str().unwrap();
    assert_eq!(app.get("/v2/integrations").await.status, StatusCode::OK);
    let read = Some(app.read_key.as_str());
    for (method, path, body) in [
        (Method::POST, "/v2/integrations".to_owned(), Some(json!({"name": "x", "type": "WEBHOOK"}))),
        (Method::PUT, format!("/v2/integrations/{id}"), Some(json!({"name": "y"}))),
        (Method::DELETE, format!("/v2/integrations/{id}"), None),
        (Method::POST, "/v2/places".to_owned(), Some(json!({"name": "p"}))),
        (Method::POST, "/v2/integrations/resource-mappings".to_owned(), Some(json!({}))),
    ] {
        let res = app.call(method, &path, read, body).await;
        assert_problem(&res, StatusCode::FORBIDDEN, "forbidden");
    }
    // Nothing was changed by the refused requests.
    let after = app.get(&format!("/v2/integrations/{id}")).await;
    assert_eq!(after.body["name"], "hook");
}

/// A node trusts a key it looked up for one second (so a burst of requests
/// costs one database read); a revoked key stops working within that.
#[tokio::test]
async fn revoked_keys_stop_working_within_a_second() {
    let app = spawn_app().await;
    let key = new_key(&*app.store, &app.org.id, Scope::Write).await;
    assert_eq!(app.call(Method::GET, "/v2/integrations", Some(&key), None).await.status, StatusCode::OK);
    let listed = app.store.list_keys(&app.org.id).await.unwrap();
    let id = &listed.last().unwrap().id;
    assert!(app.store.revoke_key(&app.org.id, id).await.unwrap());
    tokio::time::sleep(switchyard_api::KEY_TTL).await;
    let res = app.call(Method::GET, "/v2/integrations", Some(&key), None).await;
    assert_problem(&res, StatusCode::UNAUTHORIZED, "unauthorized");
    // A key never seen is refused at once, cached or not.
    let res = app.call(Method::GET, "/v2/integrations", Some("sy_not_a_key"), None).await;
    assert_problem(&res, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn another_organizations_ids_are_not_found() {
    let app = spawn_app().await;
    let hook = app.webhook("theirs").await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let (place, device, device_path) = app.place_and_device("meter").await;
    let mapping = app
        .post(
            "/v2/integrations/resource-mappings",
            json!({"integrationId": id, "externalId": "e1", "resourcePath": device_path}),
        )
        .await;
    assert_eq!(mapping.status, StatusCode::CREATED);
    let mapping_id = mapping.body["id"].as_str().unwrap().to_owned();

    let (_, other) = new_org(&*app.store, "Other", false).await;
    let other = Some(other.as_str());
    for (method, path, body) in [
        (Method::GET, format!("/v2/integrations/{id}"), None),
        (Method::PUT, format!("/v2/integrations/{id}"), Some(json!({"name": "stolen"}))),
        (Method::DELETE, format!("/v2/integrations/{id}"), None),
        (Method::GET, format!("/v2/integrations/{id}/resource-mappings"), None),
        (Method::DELETE, format!("/v2/integrations/resource-mappings/{mapping_id}"), None),
        (Method::GET, format!("/v2/places/{place}"), None),
        (Method::PUT, format!("/v2/places/{place}"), Some(json!({"name": "stolen"}))),
        (Method::DELETE, format!("/v2/places/{place}"), None),
        (Method::GET, format!("/v2/devices/{device}"), None),
        (Method::DELETE, format!("/v2/devices/{device}"), None),
        (Method::GET, format!("/v2/integrations/resources?path=/places/{place}"), None),
        (
            Method::POST,
            "/v2/integrations/resource-mappings".to_owned(),
            Some(json!({"integrationId": id, "externalId": "e2", "resourcePath": "/places/".to_owned() + &place})),
        ),
    ] {
        let res = app.call(method.clone(), &path, other, body).await;
        assert_problem(&res, StatusCode::NOT_FOUND, "not_found");
        assert!(!res.body.to_string().contains("theirs"), "{method} {path} leaked data: {:?}", res.body);
    }
    let listed = app.call(Method::GET, "/v2/integrations", other, None).await;
    assert_eq!(listed.body["data"], json!([]));
    let check = app.call(Method::GET, &format!("/v2/integrations/validate-path?path={device_path}"), other, None).await;
    assert_eq!(check.body["valid"], false);
    let borrowed = app
        .call(Method::POST, "/v2/devices", other, Some(json!({"name": "d", "placeId": place, "deviceType": "meter"})))
        .await;
    assert_problem(&borrowed, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(borrowed.fields(), ["placeId"]);
    // The owner's data is untouched.
    assert_eq!(app.get(&format!("/v2/integrations/{id}")).await.body["name"], "theirs");
    assert_eq!(
        app.get(&format!("/v2/integrations/{id}/resource-mappings")).await.body["data"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn the_openapi_document_and_health_need_no_key() {
    let app = spawn_app().await;
    for path in ["/v2/openapi.json", "/healthz", "/readyz"] {
        let res = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    let missing = app.get("/v2/no-such-thing").await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "not_found");
}
