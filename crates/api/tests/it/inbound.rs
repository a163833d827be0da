//! HTTP inbound end to end: callers post to `/v2/inbound/{id}` and are
//! answered 202 once their message is stored; who they are, how much and how
//! fast they send are checked before anything is stored.
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::ingress::{burst_conformance, conformance, ingress_on, records, state, until, Source};
use crate::{spawn_configured, App, Backend};

/// A caller posting JSON with the integration's bearer token, as a device
/// gateway would: it retries what is refused for now (429, 503) in the
/// background, after `Retry-After`, until it is taken.
#[derive(Default)]
struct Caller {
    client: reqwest::Client,
    endpoint: Mutex<(String, String)>,
}

impl Caller {
    fn endpoint(&self) -> (String, String) {
        self.endpoint.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Source for Caller {
    fn type_key(&self) -> &'static str {
        "HTTP_INBOUND"
    }
    fn properties(&self) -> Value {
        json!({"format": "json", "externalIdFrom": "topic:1"})
    }
    fn source_ref(&self, external: &str) -> String {
        format!("sites/{external}/data")
    }
    async fn send(&self, external: &str, payloads: &[Vec<u8>]) {
        let (url, token) = self.endpoint();
        let url = format!("{url}/{}", self.source_ref(external));
        for payload in payloads {
            let post = {
                let (client, url, token, payload) = (self.client.clone(), url.clone(), token.clone(), payload.clone());
                move || {
                    client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(payload.clone())
                        .send()
                }
            };
            let res = post().await.unwrap();
            match res.status() {
                StatusCode::ACCEPTED => {}
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                    tokio::spawn(async move {
                        let mut res = res;
                        while res.status() != StatusCode::ACCEPTED {
                            let after = res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap();
                            tokio::time::sleep(Duration::from_secs(after).min(Duration::from_millis(200))).await;
                            res = post().await.unwrap();
                        }
                    });
                }
                other => panic!("{other}: {}", res.text().await.unwrap()),
            }
        }
    }
    async fn stop(&mut self) {
        unreachable!("a caller is not a source Switchyard connects to")
    }
    async fn start(&mut self) {}
    fn stoppable(&self) -> bool {
        false
    }
    fn attach(&self, base: &str, created: &Value) {
        let url = format!("{base}/v2/inbound/{}", created["id"].as_str().unwrap());
        let mut endpoint = self.endpoint.lock().unwrap();
        // A token is generated (and shown once) when the integration authenticates by token.
        let token = created["generatedSecrets"]["token"].as_str().map_or(endpoint.1.clone(), str::to_owned);
        *endpoint = (url, token);
    }
}

async fn http_inbound_messages_are_stored_delivered_and_logged(backend: Backend) {
    conformance(backend, &mut Caller::default()).await;
}

/// Posts `body` to the integration's endpoint with `headers`; returns the status, `Retry-After` and the body.
async fn post(
    app: &App,
    integration: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (StatusCode, Option<String>, Value) {
    let mut req = app.client.post(format!("{}/v2/inbound/{integration}/sensor-7", app.base)).body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    (status, retry, res.json().await.unwrap_or(Value::Null))
}

fn json_type() -> (&'static str, String) {
    ("content-type", "application/json".into())
}

async fn logged(app: &App, integration: &str) -> Vec<Value> {
    records(&app.get(&format!("/v2/integrations/{integration}/messages")).await.body)
}

#[tokio::test]
async fn callers_prove_who_they_are_and_retries_are_stored_once() {
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    let caller = Caller::default();
    let token_id = ingress_on(&app, &caller, &device_path, json!({"externalIdFrom": "topic:0"})).await;
    let (_, token) = caller.endpoint();
    let view = app.get(&format!("/v2/integrations/{token_id}")).await.body;
    assert_eq!(view["secretsSet"], json!(["token"]));
    assert!(!view.to_string().contains(&token), "the token is shown once, at create");
    assert!(view.get("generatedSecrets").is_none());
    until(&app, &format!("/v2/integrations/{token_id}"), "open", |i| state(i) == "connected").await;

    let body = br#"{"power": 5}"#;
    let (status, _, problem) = post(&app, &token_id, &[json_type()], body).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    assert_eq!(problem["detail"], "send the integration's token in the authorization header");
    let wrong = ("authorization", format!("Bearer {token}x"));
    assert_eq!(post(&app, &token_id, &[json_type(), wrong], body).await.0, StatusCode::UNAUTHORIZED);
    assert!(logged(&app, &token_id).await.is_empty(), "nothing of a refused request is kept");
    let bearer = ("authorization", format!("Bearer {token}"));
    let key = ("idempotency-key", "reading-1".to_owned());
    let (status, _, first) = post(&app, &token_id, &[json_type(), bearer.clone(), key.clone()], body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!((first["outcome"].as_str(), first["records"].as_u64()), (Some("stored"), Some(1)));
    let (status, _, again) = post(&app, &token_id, &[json_type(), bearer, key], body).await;
    assert_eq!(
        (status, again["outcome"].as_str()),
        (StatusCode::ACCEPTED, Some("duplicate")),
        "a retry is stored once"
    );
    let log = logged(&app, &token_id).await;
    assert_eq!(log[1]["id"], first["messageId"]);
    assert_eq!(log[1]["sourceId"], "reading-1");
    assert!(log[1]["attributes"].to_string().contains("idempotency-key"));
    assert!(!log.iter().any(|m| m.to_string().contains(&token)), "credentials are not logged");
    let stored = app.get(&format!("/v2/telemetry?deviceId={device}")).await.body;
    assert_eq!(records(&stored).len(), 1);

    // Standard Webhooks, with the secret given at create.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let signed_id = ingress_on(
        &app,
        &caller,
        &device_path,
        json!({"externalIdFrom": "topic:0",
        "authMethod": "STANDARD_WEBHOOKS", "signingSecret": secret}),
    )
    .await;
    until(&app, &format!("/v2/integrations/{signed_id}"), "open", |i| state(i) == "connected").await;
    let sign = |id: &str, ts: i64, body: &[u8]| {
        let key = base64::engine::general_purpose::STANDARD.decode(&secret[6..]).unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
    };
    let now = switchyard_core::now_ms() / 1000;
    let headers = |id: &str, ts: i64, signature: String| {
        vec![
            json_type(),
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", signature),
        ]
    };
    let ok = post(&app, &signed_id, &headers("evt_1", now, sign("evt_1", now, body)), body).await;
    assert_eq!((ok.0, ok.2["outcome"].as_str()), (StatusCode::ACCEPTED, Some("stored")), "{}", ok.2);
    let redelivered = post(&app, &signed_id, &headers("evt_1", now, sign("evt_1", now, body)), body).await;
    assert_eq!(redelivered.2["outcome"], "duplicate", "webhook-id deduplicates");
    let tampered = post(&app, &signed_id, &headers("evt_2", now, sign("evt_2", now, body)), br#"{"power": 6}"#).await;
    assert_eq!(
        (tampered.0, tampered.2["detail"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("the webhook-signature does not match"))
    );
    let stale = now - 301;
    let late = post(&app, &signed_id, &headers("evt_3", stale, sign("evt_3", stale, body)), body).await;
    assert_eq!(late.0, StatusCode::UNAUTHORIZED);
    assert!(late.2["detail"].as_str().unwrap().contains("more than the 300 s allowed"), "{}", late.2);

    // HMAC-SHA256 of the body, GitHub style.
    let hmac_id = ingress_on(
        &app,
        &caller,
        &device_path,
        json!({"externalIdFrom": "topic:0",
        "authMethod": "HMAC_SHA256", "signingSecret": "it's a secret to everybody"}),
    )
    .await;
    until(&app, &format!("/v2/integrations/{hmac_id}"), "open", |i| state(i) == "connected").await;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"it's a secret to everybody").unwrap();
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let ok = post(&app, &hmac_id, &[json_type(), ("x-hub-signature-256", signature.clone())], body).await;
    assert_eq!(ok.0, StatusCode::ACCEPTED, "{}", ok.2);
    let bad = post(&app, &hmac_id, &[json_type(), ("x-hub-signature-256", signature)], b"{}").await;
    assert_eq!(bad.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn size_type_rate_and_state_are_checked_before_anything_is_stored() {
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let (_, _, device_path) = app.place_and_device("meter").await;
    let caller = Caller::default();
    let id = ingress_on(&app, &caller, &device_path, json!({"externalIdFrom": "topic:0", "maxBodyBytes": 64})).await;
    let integration = format!("/v2/integrations/{id}");
    let slow = app.put(&integration, json!({"properties": {"rateLimitPerSecond": 0.5}})).await;
    assert_eq!(slow.status, StatusCode::OK, "{:?}", slow.body);
    until(&app, &integration, "open with the new rate", |i| {
        state(i) == "connected" && i["connection"]["since"].as_i64() >= slow.body["updatedAt"].as_i64()
    })
    .await;
    let (_, token) = caller.endpoint();
    let bearer = || ("authorization", format!("Bearer {token}"));

    let big = vec![b' '; 65];
    let (status, _, problem) = post(&app, &id, &[json_type(), bearer()], &big).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("the request body is larger than 64 bytes"))
    );
    let (status, _, problem) = post(&app, &id, &[("content-type", "text/plain".into()), bearer()], b"{}").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(problem["detail"].as_str().unwrap().contains("application/json"), "{problem}");

    // Half a message a second: the first is taken, the next is told when to come back.
    assert_eq!(post(&app, &id, &[json_type(), bearer()], br#"{"a": 1}"#).await.0, StatusCode::ACCEPTED);
    let (status, retry, problem) = post(&app, &id, &[json_type(), bearer()], br#"{"a": 2}"#).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    assert_eq!(retry.as_deref(), Some("2"));
    assert_eq!(app.get(&integration).await.body["connection"]["throttled"], true);
    assert_eq!(logged(&app, &id).await.len(), 1, "only what was taken is logged");

    // Disabled: come back later (a sender that retries loses nothing); unknown ids are 404.
    assert_eq!(app.put(&integration, json!({"enabled": false})).await.status, StatusCode::OK);
    until(&app, &integration, "disabled", |i| state(i) == "disabled").await;
    let (status, retry, problem) = post(&app, &id, &[json_type(), bearer()], br#"{"a": 3}"#).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("the integration is disabled"))
    );
    assert!(retry.is_some());
    let mqtt = app
        .post(
            "/v2/integrations",
            json!({"name": "m", "type": "MQTT", "direction": "INGRESS", "enabled": false,
        "properties": {"host": "127.0.0.1", "topics": ["a/+"], "externalIdFrom": "topic:1"}}),
        )
        .await;
    for other in [mqtt.body["id"].as_str().unwrap(), "int_00000000000000000000000000", "nope"] {
        let (status, _, problem) = post(&app, other, &[json_type(), bearer()], b"{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{other}: {problem}");
    }
}

/// Over the rate limit a caller is told to come back (429 and `Retry-After`): it does, and none is lost.
async fn a_burst_is_paced_by_429s_and_all_of_it_is_stored(backend: Backend) {
    burst_conformance(backend, &Caller::default()).await;
}

on_both_stores!(
    http_inbound_messages_are_stored_delivered_and_logged,
    a_burst_is_paced_by_429s_and_all_of_it_is_stored
);

/// A secret global: set write-only, never shown, rendered only into secret
/// properties (here HTTP inbound's token), and gone when removed.
#[tokio::test]
async fn a_token_can_come_from_a_secret_global_that_is_never_shown() {
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;
    let set = app
        .put("/v2/globals", json!({"globals": {"site": "north"}, "secrets": {"gatewayToken": "tok-from-globals"}}))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(set.body, json!({"globals": {"site": "north"}, "secretsSet": ["gatewayToken"]}));
    assert!(!app.get("/v2/globals").await.body.to_string().contains("tok-from-globals"));
    let both = app.put("/v2/globals", json!({"globals": {"x": "1"}, "secrets": {"x": "2", "empty": ""}})).await;
    assert_eq!(both.fields(), ["secrets.empty", "secrets.x"]);
    let kept = app.put("/v2/globals", json!({"globals": {"site": "south"}})).await;
    assert_eq!(kept.body["secretsSet"], json!(["gatewayToken"]), "secrets not named are kept");

    let caller = Caller::default();
    let id = ingress_on(
        &app,
        &caller,
        &device_path,
        json!({"externalIdFrom": "topic:0", "token": "{{ globals.gatewayToken }}"}),
    )
    .await;
    let integration = format!("/v2/integrations/{id}");
    until(&app, &integration, "open", |i| state(i) == "connected").await;
    let bearer = ("authorization", "Bearer tok-from-globals".to_owned());
    let (status, _, body) = post(&app, &id, &[json_type(), bearer.clone()], br#"{"v": 1}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(records(&app.get(&format!("/v2/telemetry?deviceId={device}")).await.body).len(), 1);

    // Not into a property that is shown.
    let mqtt = app
        .post(
            "/v2/integrations",
            json!({"name": "m", "type": "MQTT", "direction": "INGRESS",
            "properties": {"host": "{{ globals.gatewayToken }}", "topics": ["a/+"], "externalIdFrom": "topic:1"}}),
        )
        .await;
    let failed = until(&app, &format!("/v2/integrations/{}", mqtt.body["id"].as_str().unwrap()), "failed", |i| {
        state(i) == "failed"
    })
    .await;
    assert_eq!(
        failed["connection"]["lastError"],
        "host: `gatewayToken` is a secret global: only secret properties may use it"
    );
    assert!(!failed.to_string().contains("tok-from-globals"));

    // Removed: the endpoint cannot check tokens any more, and says so.
    let removed =
        app.put("/v2/globals", json!({"globals": {"site": "south"}, "secrets": {"gatewayToken": null}})).await;
    assert_eq!(removed.body["secretsSet"], json!([]));
    until(&app, &integration, "failed", |i| state(i) == "failed").await;
    let (status, _, _) = post(&app, &id, &[json_type(), bearer], br#"{"v": 2}"#).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
