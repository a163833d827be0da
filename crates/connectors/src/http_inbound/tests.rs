//! Accepting requests, without a server: each way to authenticate, sizes,
//! content types, and what the message keeps.
use serde_json::{json, Value};
use switchyard_core::{Direction, InboundMessage, Integration, IntegrationId, OrgId, Secret};

use super::InboundConfig;
use crate::ingress::{Endpoint, InboundRequest, Refusal};
use crate::webhook::sign::SigningKey;

const NOW: i64 = 1_700_000_000_000;
const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn config(props: Value, secrets: &[(&str, &str)]) -> InboundConfig {
    let mut properties = props.as_object().unwrap().clone();
    properties.entry("externalIdFrom").or_insert(json!("topic:0"));
    let integration = Integration {
        id: IntegrationId::new(),
        org_id: OrgId::new(),
        name: "in".into(),
        type_key: "HTTP_INBOUND".into(),
        direction: Direction::Ingress,
        enabled: true,
        properties,
        secrets: secrets.iter().map(|(k, v)| (k.to_string(), Secret::new(v.to_string()))).collect(),
        metadata: Default::default(),
        resource_paths: vec![],
        created_at: 0,
        updated_at: 0,
    };
    InboundConfig::from_integration(&integration).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    pairs.iter().map(|(k, v)| (http::HeaderName::try_from(*k).unwrap(), v.parse().unwrap())).collect()
}

fn accept(config: &InboundConfig, pairs: &[(&str, &str)], body: &[u8]) -> Result<InboundMessage, Refusal> {
    let headers = headers(pairs);
    config.accept(&InboundRequest { path: "/sensor-7/data", headers: &headers, body, received_at: NOW })
}

fn unauthorized(result: Result<InboundMessage, Refusal>) -> String {
    match result {
        Err(Refusal::Unauthorized(why)) => why,
        other => panic!("expected a 401, got {other:?}"),
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn a_bearer_token_or_a_token_header_is_checked() {
    let c = config(json!({}), &[("token", "s3cret")]);
    let m = accept(&c, &[JSON, ("authorization", "Bearer s3cret"), ("x-site", "north")], b"{}").unwrap();
    assert_eq!(m.source_ref, "sensor-7/data", "the path is the topic");
    assert_eq!(
        m.attributes,
        [("content-type".to_owned(), "application/json".to_owned()), ("x-site".into(), "north".into())],
        "headers are attributes, credentials are not"
    );
    assert_eq!(unauthorized(accept(&c, &[JSON], b"{}")), "send the integration's token in the authorization header");
    assert_eq!(unauthorized(accept(&c, &[JSON, ("authorization", "Bearer s3cre")], b"{}")), "the token does not match");
    assert!(unauthorized(accept(&c, &[JSON, ("authorization", "s3cret")], b"{}")).contains("Bearer <token>"));

    let c = config(json!({"tokenHeader": "X-Token"}), &[("token", "s3cret")]);
    let m = accept(&c, &[JSON, ("x-token", "s3cret")], b"{}").unwrap();
    assert!(m.attributes.iter().all(|(k, _)| k != "x-token"), "the token header is not kept");
}

#[test]
fn standard_webhooks_signatures_are_checked_with_their_tolerance() {
    let c = config(json!({"authMethod": "STANDARD_WEBHOOKS"}), &[("signingSecret", WHSEC)]);
    let key = SigningKey::parse(WHSEC).unwrap();
    let body = br#"{"power": 1}"#;
    let at = NOW / 1000 - 100;
    let signature = key.sign("evt_1", at, body);
    let signed = |ts: i64, sig: &str| {
        accept(
            &c,
            &[JSON, ("webhook-id", "evt_1"), ("webhook-timestamp", &ts.to_string()), ("webhook-signature", sig)],
            body,
        )
    };
    let m = signed(at, &signature).unwrap();
    assert_eq!(m.dedup_key.as_deref(), Some("evt_1"), "webhook-id deduplicates");
    assert!(m.attributes.iter().all(|(k, _)| k != "webhook-signature"));
    assert_eq!(unauthorized(signed(at + 1, &signature)), "the webhook-signature does not match");
    let old = NOW / 1000 - 301;
    assert_eq!(
        unauthorized(signed(old, &key.sign("evt_1", old, body))),
        "webhook-timestamp is 301 s from now, more than the 300 s allowed"
    );
    assert!(unauthorized(accept(&c, &[JSON], body)).contains("webhook-id, webhook-timestamp and webhook-signature"));
}

#[test]
fn hmac_signatures_of_the_body_are_checked_in_hex_or_base64() {
    use hmac::{Hmac, Mac};
    let mac = |body: &[u8]| {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"shared").unwrap();
        m.update(body);
        m.finalize().into_bytes().to_vec()
    };
    let c = config(json!({"authMethod": "HMAC_SHA256"}), &[("signingSecret", "shared")]);
    let good = format!("sha256={}", hex::encode(mac(b"{}")));
    assert!(accept(&c, &[JSON, ("x-hub-signature-256", &good)], b"{}").is_ok());
    assert!(unauthorized(accept(&c, &[JSON, ("x-hub-signature-256", &good)], b"{ }")).contains("does not match"));
    assert!(
        unauthorized(accept(&c, &[JSON, ("x-hub-signature-256", &good[7..])], b"{}")).contains("start with `sha256=`")
    );

    use base64::Engine as _;
    let c = config(
        json!({"authMethod": "HMAC_SHA256", "signatureHeader": "X-Signature", "signaturePrefix": "", "signatureEncoding": "base64"}),
        &[("signingSecret", "shared")],
    );
    let good = base64::engine::general_purpose::STANDARD.encode(mac(b"{}"));
    assert!(accept(&c, &[JSON, ("x-signature", &good)], b"{}").is_ok());
}

#[test]
fn size_and_content_type_are_checked_and_an_idempotency_key_deduplicates() {
    let c = config(json!({"maxBodyBytes": 8}), &[("token", "t")]);
    let auth = ("authorization", "Bearer t");
    assert_eq!(accept(&c, &[JSON, auth], b"123456789").unwrap_err(), Refusal::TooLarge(8));
    let Err(Refusal::UnsupportedMediaType(why)) = accept(&c, &[auth, ("content-type", "text/plain")], b"{}") else {
        panic!("JSON formats take JSON")
    };
    assert!(why.contains("got `text/plain`"), "{why}");
    let senml = accept(&c, &[auth, ("content-type", "application/senml+json; charset=utf-8")], b"[]");
    assert!(senml.is_ok(), "+json types are JSON");
    let m = accept(&c, &[JSON, auth, ("idempotency-key", "k-1")], b"{}").unwrap();
    assert_eq!(m.dedup_key.as_deref(), Some("k-1"));

    let raw = config(json!({"format": "raw"}), &[("token", "t")]);
    assert!(accept(&raw, &[auth, ("content-type", "text/plain")], b"hello").is_ok(), "raw takes anything");
}
