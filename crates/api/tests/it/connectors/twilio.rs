//! SMS and PHONE against a local peer speaking the Twilio REST API (no real
//! provider is reachable here): form-encoded posts to
//! /2010-04-01/Accounts/{sid}/Messages.json and Calls.json with basic auth,
//! answered with Twilio's response shapes and error codes (20003 for bad
//! credentials, 21211 for the invalid test number +15005550001).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode as Http};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchyard_core::{now_ms, IntegrationId, Recipient, RecipientId, RecipientKind, RecipientStatus};

use super::{conformance, free_port, ingest, Got, Peer};
use crate::receiver::wait_status;
use crate::{assert_problem, App, Backend};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token";
const FROM: &str = "+15005550006";
const INVALID: &str = "+15005550001";

#[derive(Debug, Clone)]
struct Sent {
    resource: String,
    to: String,
    body: String,
}

#[derive(Clone, Default)]
struct Provider {
    sent: Arc<Mutex<Vec<Sent>>>,
    url: String,
}

fn error(status: Http, code: u32, message: &str) -> Response {
    let body = json!({"code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                      "status": status.as_u16()});
    (status, Json(body)).into_response()
}

async fn create(
    State(p): State<Provider>,
    Path((account, resource)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}")));
    if account != SID || headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error(Http::UNAUTHORIZED, 20003, "Authenticate");
    }
    let to = form.get("To").cloned().unwrap_or_default();
    if to == INVALID || !to.starts_with('+') {
        return error(Http::BAD_REQUEST, 21211, &format!("The 'To' number {to} is not a valid phone number."));
    }
    if form.get("From").map(String::as_str) != Some(FROM) {
        return error(Http::BAD_REQUEST, 21212, "The 'From' number is not a valid phone number or shortcode.");
    }
    let (prefix, body) = match resource.as_str() {
        "Messages.json" => ("SM", form.get("Body").cloned()),
        "Calls.json" => ("CA", form.get("Twiml").cloned()),
        _ => return error(Http::NOT_FOUND, 20404, "The requested resource was not found"),
    };
    let Some(body) = body else { return error(Http::BAD_REQUEST, 21602, "Message body is required.") };
    let sid = format!("{prefix}{:032x}", now_ms() as u128 * 7919 + p.sent.lock().unwrap().len() as u128);
    p.sent.lock().unwrap().push(Sent { resource: resource.clone(), to: to.clone(), body: body.clone() });
    let answer = json!({"sid": sid, "account_sid": SID, "to": to, "from": FROM, "status": "queued",
        "api_version": "2010-04-01", "date_created": "Sun, 22 Nov 2026 15:00:00 +0000", "error_code": null,
        "error_message": null, "uri": format!("/2010-04-01/Accounts/{SID}/{}/{sid}.json", resource.trim_end_matches(".json"))});
    (Http::CREATED, Json(answer)).into_response()
}

impl Provider {
    async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Provider { url: format!("http://{}", listener.local_addr().unwrap()), ..Default::default() };
        let app = axum::Router::new()
            .route("/2010-04-01/Accounts/{account}/{resource}", axum::routing::post(create))
            .with_state(p.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        p
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// The code in the last verification text to `to`.
    fn code_for(&self, to: &str) -> String {
        let text =
            self.sent().into_iter().rev().find(|s| s.to == to && s.body.contains("verification code")).unwrap().body;
        text.split_whitespace()
            .find(|w| w.trim_end_matches('.').len() == 6 && w.trim_end_matches('.').chars().all(|c| c.is_ascii_digit()))
            .unwrap()
            .trim_end_matches('.')
            .to_owned()
    }
}

fn unescape(xml: &str) -> String {
    xml.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

struct Twilio {
    provider: Provider,
    phone: bool,
    seen: Mutex<usize>,
}

const RECIPIENT: &str = "+14155550100";

impl Twilio {
    fn take(&self, n: usize) -> Option<Vec<Sent>> {
        let deliveries: Vec<Sent> =
            self.provider.sent().into_iter().filter(|s| !s.body.contains("verification code")).collect();
        let mut seen = self.seen.lock().unwrap();
        (deliveries.len() >= *seen + n).then(|| {
            let new = deliveries[*seen..*seen + n].to_vec();
            *seen += n;
            new
        })
    }
}

#[async_trait]
impl Peer for Twilio {
    fn type_key(&self) -> &'static str {
        if self.phone {
            "PHONE"
        } else {
            "SMS"
        }
    }
    fn properties(&self) -> Value {
        let template = if self.phone { "speechTemplate" } else { "bodyTemplate" };
        json!({"accountSid": SID, "authToken": TOKEN, "fromNumber": FROM, "apiBaseUrl": self.provider.url,
               template: "{{ published | tojson }}"})
    }
    fn unreachable(&self) -> Value {
        let mut p = self.properties();
        p["apiBaseUrl"] = json!(format!("http://127.0.0.1:{}", free_port()));
        p
    }
    fn refused(&self) -> (Value, &'static str) {
        let mut p = self.properties();
        p["authToken"] = json!("not-the-token");
        (p, "20003: Authenticate")
    }
    fn has_objects(&self) -> bool {
        false
    }
    /// The conformance checks need a recipient on integrations whose
    /// provider refuses or cannot be reached, so they get one verified
    /// directly in the store; the verification flow has its own test below.
    async fn prepare(&self, app: &App, integration: &str) {
        let now = now_ms();
        let recipient = Recipient {
            id: RecipientId::new(),
            integration_id: IntegrationId::parse(integration).unwrap(),
            kind: RecipientKind::Phone,
            address: RECIPIENT.into(),
            name: None,
            status: RecipientStatus::Active,
            verification: None,
            created_at: now,
            updated_at: now,
        };
        app.store.create_recipient(&app.org.id, &recipient).await.unwrap();
    }
    async fn receive(&self, n: usize) -> Vec<Got> {
        for _ in 0..500 {
            if let Some(new) = self.take(n) {
                return new
                    .into_iter()
                    .map(|s| {
                        assert_eq!(s.to, RECIPIENT);
                        let text = if self.phone {
                            assert_eq!(s.resource, "Calls.json");
                            let inner = s
                                .body
                                .strip_prefix("<Response><Say>")
                                .and_then(|b| b.strip_suffix("</Say></Response>"));
                            unescape(inner.unwrap_or_else(|| panic!("TwiML <Say>: {}", s.body)))
                        } else {
                            assert_eq!(s.resource, "Messages.json");
                            s.body
                        };
                        let body: Value = serde_json::from_str(&text).unwrap();
                        Got { delivery_id: body["delivery_id"].as_str().unwrap().to_owned(), body }
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the provider got {} messages", self.provider.sent().len());
    }
}

async fn sms_passes_the_connector_checks(backend: Backend) {
    conformance(backend, &Twilio { provider: Provider::start().await, phone: false, seen: Mutex::new(0) }).await;
}

async fn phone_passes_the_connector_checks(backend: Backend) {
    conformance(backend, &Twilio { provider: Provider::start().await, phone: true, seen: Mutex::new(0) }).await;
}

/// A number added by API gets a code by SMS and receives nothing until the
/// code is confirmed; wrong codes count down, expired codes fail, a new code
/// replaces the old.
async fn phone_numbers_are_verified_by_sms(backend: Backend) {
    let provider = Provider::start().await;
    let peer = Twilio { provider: provider.clone(), phone: false, seen: Mutex::new(0) };
    let app = crate::spawn_configured(backend, |_| {}).await;
    let (_, device, _) = app.place_and_device("meter").await;
    let mut props = peer.properties();
    props.as_object_mut().unwrap().remove("bodyTemplate"); // the default template
    let created = app.post("/v2/integrations", json!({"name": "sms", "type": "SMS", "properties": props})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    app.post(&format!("/v2/integrations/{id}/triggers"), json!({"kinds": ["alarm"]})).await;
    let path = format!("/v2/integrations/{id}/recipients");

    assert_eq!(app.post(&path, json!({"address": "ops@plant.test"})).await.fields(), ["address"], "E.164 only");
    let bad = app.post(&path, json!({"address": INVALID})).await;
    assert_problem(&bad, StatusCode::BAD_GATEWAY, "upstream_failed");
    // The provider here is on loopback (allowed, not public): its answer is not echoed.
    let detail = bad.body["detail"].as_str().unwrap();
    assert!(!detail.contains("21211") && detail.contains("not a public address"), "{:?}", bad.body);
    assert!(app.get(&path).await.body["data"].as_array().unwrap().is_empty(), "nothing stored when the code cannot go");

    let added = app.post(&path, json!({"address": RECIPIENT, "name": "On call"})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{:?}", added.body);
    assert_eq!(added.body["status"], "pending");
    assert_eq!(added.body["verification"]["attemptsLeft"], 5);
    let one = format!("{path}/{}", added.body["id"].as_str().unwrap());
    let code = provider.code_for(RECIPIENT);
    assert_problem(&app.post(&path, json!({"address": RECIPIENT})).await, StatusCode::CONFLICT, "conflict");

    // Pending: an alarm reaches nobody.
    let alarm = json!({"kind": "alarm", "deviceId": device, "property": "door", "timestamp": 1, "payload": true});
    ingest(&app, vec![alarm.clone()]).await;
    let dead = wait_status(&app, &id, "dead").await;
    assert!(dead["lastError"].as_str().unwrap().contains("no active (verified) recipients"), "{dead}");

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let res = app.post(&format!("{one}/verify"), json!({"code": wrong})).await;
    assert_eq!(res.fields(), ["code"]);
    assert!(res.body["detail"].as_str().unwrap().contains("4 tries left"), "{:?}", res.body);
    assert_eq!(app.get(&one).await.body["verification"]["attemptsLeft"], 4);

    // An expired code fails even when right.
    let rid = RecipientId::parse(added.body["id"].as_str().unwrap()).unwrap();
    let mut stored = app.store.get_recipient(&app.org.id, &rid).await.unwrap().unwrap();
    let fresh = stored.clone();
    stored.verification.as_mut().unwrap().expires_at = now_ms() - 1;
    app.store.update_recipient(&app.org.id, &stored).await.unwrap();
    let res = app.post(&format!("{one}/verify"), json!({"code": code})).await;
    assert!(res.body["detail"].as_str().unwrap().contains("expired"), "{:?}", res.body);
    app.store.update_recipient(&app.org.id, &fresh).await.unwrap();

    // Five wrong codes void it; a new code replaces it.
    for _ in 0..4 {
        app.post(&format!("{one}/verify"), json!({"code": wrong})).await;
    }
    let res = app.post(&format!("{one}/verify"), json!({"code": code})).await;
    assert!(res.body["detail"].as_str().unwrap().contains("too many"), "{:?}", res.body);
    let resent = app.post(&format!("{one}/send-code"), json!({})).await;
    assert_eq!(resent.status, StatusCode::OK, "{:?}", resent.body);
    assert_eq!(resent.body["verification"]["attemptsLeft"], 5);
    let new_code = provider.code_for(RECIPIENT);
    let ok = app.post(&format!("{one}/verify"), json!({"code": new_code})).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.body["status"], "active");
    assert!(ok.body["verification"].is_null());
    assert_problem(
        &app.post(&format!("{one}/verify"), json!({"code": new_code})).await,
        StatusCode::CONFLICT,
        "conflict",
    );

    // Active: the next alarm is texted.
    ingest(&app, vec![alarm]).await;
    let sent = wait_status(&app, &id, "succeeded").await;
    assert!(sent["integrationData"]["messageId"].as_str().unwrap().starts_with("SM"), "{sent}");
    let last = provider.sent().pop().unwrap();
    assert_eq!(last.to, RECIPIENT);
    assert!(last.body.starts_with("ALARM door = true on Meter 1 (Plant A)"), "the default template: {}", last.body);
}

/// Without an allow-list, a provider at a literal loopback address is
/// refused before any connection is made, and the answer says so: adding a
/// recipient tells nothing about what listens there.
async fn a_provider_at_a_non_public_literal_address_is_never_reached(backend: Backend) {
    let app = crate::spawn_configured(backend, |c| c.egress = switchyard_connectors::EgressPolicy::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for host in ["127.0.0.1", "[::ffff:127.0.0.1]"] {
        let props = json!({"accountSid": SID, "authToken": TOKEN, "fromNumber": FROM,
                           "apiBaseUrl": format!("http://{host}:{port}")});
        let created = app.post("/v2/integrations", json!({"name": "sms", "type": "SMS", "properties": props})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let id = created.body["id"].as_str().unwrap();
        let res = app.post(&format!("/v2/integrations/{id}/recipients"), json!({"address": RECIPIENT})).await;
        assert_problem(&res, StatusCode::BAD_GATEWAY, "upstream_failed");
        let detail = res.body["detail"].as_str().unwrap();
        assert!(detail.contains("not a public address"), "{detail}");
    }
    let accepted = tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "no connection reached the listener");
}

on_both_stores!(
    sms_passes_the_connector_checks,
    phone_passes_the_connector_checks,
    phone_numbers_are_verified_by_sms,
    a_provider_at_a_non_public_literal_address_is_never_reached,
);
