//! Every error is problem+json, including those answered below the handlers.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{assert_problem, spawn_app, spawn_configured, Backend};

#[tokio::test]
async fn errors_below_the_handlers_are_problem_json() {
    let app = spawn_app().await;

    // An unsupported method: 405 naming what the route takes.
    let res =
        app.client.patch(format!("{}/v2/places", app.base)).header("x-api-key", &app.write_key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = res.headers().get("allow").expect("an Allow header").to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!((body["status"].as_u64(), body["code"].as_str()), (Some(405), Some("method_not_allowed")));

    // A path id that is not UTF-8.
    let res = app.call(Method::GET, "/v2/places/%FF%FE", Some(&app.read_key), None).await;
    assert_problem(&res, StatusCode::BAD_REQUEST, "bad_request");

    // An over-long query.
    let long = format!("/v2/integrations?q={}", "a".repeat(9000));
    assert_problem(
        &app.call(Method::GET, &long, Some(&app.read_key), None).await,
        StatusCode::URI_TOO_LONG,
        "uri_too_long",
    );

    // The actions route's body limit (it reads the body itself).
    let int = app.webhook("w").await["id"].as_str().unwrap().to_owned();
    let big = json!({"payload": "x".repeat(1024 * 1024 + 10)});
    let res = app
        .call(Method::POST, &format!("/v2/integrations/{int}/actions/test-send"), Some(&app.write_key), Some(big))
        .await;
    assert_problem(&res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

/// PostgreSQL cannot store a NUL character and answered with a 500; both
/// stores now refuse one with the field, wherever it is.
async fn text_with_nul_is_refused_naming_the_field(backend: Backend) {
    let app = spawn_configured(backend, |_| {}).await;
    for (path, body, field) in [
        ("/v2/places", json!({"name": "Plant\u{0}A"}), "name"),
        ("/v2/places", json!({"name": "A", "metadata": {"site": "x\u{0}"}}), "metadata.site"),
        (
            "/v2/integrations",
            json!({"name": "w", "type": "WEBHOOK", "properties": {"url": "https://example.test/\u{0}"}}),
            "properties.url",
        ),
    ] {
        let res = app.post(path, body).await;
        assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(res.fields(), [field]);
    }
    let res = app.get("/v2/integrations?q=a%00b").await;
    assert_problem(&res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(res.fields(), ["q"]);
    assert_eq!(app.get("/v2/places").await.body["data"], json!([]), "nothing stored");
    // A JSON text that only spells a backslash and `u0000` holds no NUL.
    let res = app.post("/v2/places", json!({"name": "C:\\u0000"})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
}

on_both_stores!(text_with_nul_is_refused_naming_the_field);
