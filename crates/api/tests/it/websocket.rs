//! WEBSOCKET ingress against a WebSocket server this test runs
//! (async-tungstenite's server side over TCP, or TLS with openssl's
//! certificates): it checks the handshake's credentials, keeps what it is
//! given while no client is connected, and can stop answering to show a
//! dead link is found by its pings.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::Message;
use futures_util::StreamExt;
use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::connectors::{certificates, free_port};
use crate::ingress::{conformance, ingress_on, records, state, until, Source};
use crate::{spawn_configured, Backend};

const AUTH: &str = "Basic d3M6c2VjcmV0LXBhc3M="; // ws:secret-pass

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Vec<u8>>>,
    ready: tokio::sync::Notify,
    /// What clients sent (the opening message), and the API key header of each handshake.
    heard: Mutex<Vec<String>>,
    frozen: AtomicBool,
}

struct WsServer {
    port: u16,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl WsServer {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> WsServer {
        let mut server = WsServer { port: free_port(), tls, shared: Arc::default(), stop: CancellationToken::new() };
        server.up().await;
        server
    }

    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.stop = CancellationToken::new();
        let (stop, shared, tls) = (self.stop.clone(), self.shared.clone(), self.tls.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => a.unwrap(),
                    _ = stop.cancelled() => return,
                };
                let (stop, shared, tls) = (stop.clone(), shared.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(tcp).await {
                                serve(stream, shared, stop).await
                            }
                        }
                        None => serve(tcp, shared, stop).await,
                    }
                });
            }
        });
    }

    fn down(&mut self) {
        self.stop.cancel();
    }
}

/// One client: the handshake must carry the credentials; then queued
/// messages go out as they come, and the client's frames are read (which
/// answers its pings) unless the server is frozen. (The handshake callback's
/// type is tungstenite's, large error and all.)
#[allow(clippy::result_large_err)]
async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let heard = shared.clone();
    let check = move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let header = |n: &str| request.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if header("authorization") != AUTH {
            let mut refused = ErrorResponse::new(Some("who are you".into()));
            *refused.status_mut() = StatusCode::UNAUTHORIZED.as_u16().try_into().unwrap();
            return Err(refused);
        }
        heard.heard.lock().unwrap().push(format!("x-api-key: {}", header("x-api-key")));
        Ok(response)
    };
    let Ok(mut ws) = async_tungstenite::tokio::accept_hdr_async(stream, check).await else { return };
    loop {
        if shared.frozen.load(Ordering::SeqCst) {
            // Neither reads nor writes: pings go unanswered.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                _ = stop.cancelled() => return,
            }
        }
        let next = shared.queue.lock().unwrap().pop_front();
        if let Some(payload) = next {
            let text = String::from_utf8(payload).unwrap();
            if ws.send(Message::Text(text.into())).await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = shared.ready.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => shared.heard.lock().unwrap().push(t.to_string()),
                Some(Ok(_)) => {}
                _ => return,
            },
            _ = stop.cancelled() => return,
        }
    }
}

#[async_trait::async_trait]
impl Source for WsServer {
    fn type_key(&self) -> &'static str {
        "WEBSOCKET"
    }
    fn properties(&self) -> Value {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        json!({"url": format!("{scheme}://127.0.0.1:{}/feed", self.port), "username": "ws", "password": "secret-pass",
               "headers": ["X-Api-Key: k-123"], "openMessage": "{\"subscribe\": \"sites\"}",
               "format": "json", "externalIdFrom": "pointer:/device", "pingIntervalSeconds": 1})
    }
    fn source_ref(&self, _external: &str) -> String {
        "feed".into()
    }
    async fn send(&self, external: &str, payloads: &[Vec<u8>]) {
        for p in payloads {
            self.shared.queue.lock().unwrap().push_back(self.wire(external, p));
        }
        self.shared.ready.notify_waiters();
    }
    /// The device goes into the message itself, as a WebSocket feed has no topic.
    fn wire(&self, external: &str, payload: &[u8]) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        match value.as_object_mut() {
            Some(object) => {
                object.insert("device".into(), json!(external));
                serde_json::to_vec(&value).unwrap()
            }
            None => payload.to_vec(),
        }
    }
    async fn stop(&mut self) {
        self.down()
    }
    async fn start(&mut self) {
        self.up().await
    }
}

async fn websocket_ingress_passes_the_ingress_checks(backend: Backend) {
    let mut server = WsServer::start(None).await;
    conformance(backend, &mut server).await;
    let heard = server.shared.heard.lock().unwrap().clone();
    assert!(heard.contains(&"x-api-key: k-123".to_owned()), "the configured header is sent: {heard:?}");
    assert!(heard.contains(&r#"{"subscribe": "sites"}"#.to_owned()), "the opening message is sent: {heard:?}");
}

on_both_stores!(websocket_ingress_passes_the_ingress_checks);

/// A server that stops answering is found by the pings: silent, then the
/// link is given up and opened again.
#[tokio::test]
async fn an_unanswered_ping_turns_the_status_silent_then_reconnects() {
    let server = WsServer::start(None).await;
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let (_, _, device_path) = app.place_and_device("meter").await;
    let id = ingress_on(&app, &server, &device_path, json!({})).await;
    let integration = format!("/v2/integrations/{id}");
    until(&app, &integration, "connected", |i| state(i) == "connected").await;
    server.shared.frozen.store(true, Ordering::SeqCst);
    let silent = until(&app, &integration, "silent", |i| state(i) == "silent").await;
    assert_eq!(silent["connection"]["lastError"], "no pong within 1 s");
    let down = until(&app, &integration, "reconnecting", |i| state(i) == "reconnecting").await;
    assert!(down["connection"]["lastError"].as_str().unwrap().contains("no pong"), "{down:#}");
    server.shared.frozen.store(false, Ordering::SeqCst);
    until(&app, &integration, "connected again", |i| state(i) == "connected").await;
}

/// wss with a private CA; with verification off, any certificate; bad credentials are the status's error.
#[tokio::test]
async fn wss_trusts_its_ca_or_verification_off_and_says_when_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(read("server.crt").as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(read("server.key").as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let server = WsServer::start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await;
    let app = spawn_configured(Backend::Sqlite, |_| {}).await;
    let (_, device, device_path) = app.place_and_device("meter").await;

    let untrusted = ingress_on(&app, &server, &device_path, json!({})).await;
    let failing =
        until(&app, &format!("/v2/integrations/{untrusted}"), "refused", |i| state(i) == "reconnecting").await;
    assert!(failing["connection"]["lastError"].as_str().unwrap().contains("TLS"), "{failing:#}");
    app.delete(&format!("/v2/integrations/{untrusted}")).await;

    for extra in [json!({"caCertificate": read("ca.crt")}), json!({"verifyTls": false})] {
        let id = ingress_on(&app, &server, &device_path, extra.clone()).await;
        until(&app, &format!("/v2/integrations/{id}"), "connected over TLS", |i| state(i) == "connected").await;
        server.send("sensor-7", &[br#"{"v": 1}"#.to_vec()]).await;
        let telemetry = format!("/v2/telemetry?deviceId={device}");
        let n = records(&app.get(&telemetry).await.body).len();
        until(&app, &telemetry, "a record over wss", |l| records(l).len() == n + 1).await;
        app.delete(&format!("/v2/integrations/{id}")).await;
    }

    let wrong = ingress_on(&app, &server, &device_path, json!({"verifyTls": false, "password": "nope"})).await;
    let refused = until(&app, &format!("/v2/integrations/{wrong}"), "refused", |i| state(i) == "reconnecting").await;
    assert!(refused["connection"]["lastError"].as_str().unwrap().contains("401"), "{refused:#}");
    assert!(!refused.to_string().contains("nope"), "the password is never shown");
}
