//! The WebSocket receiver: connect (through the egress policy), handshake
//! with the integration's headers and basic credentials, send the opening
//! message, then hand every text or binary frame to the sink while later
//! ones are read (up to `IN_FLIGHT` being stored; beyond that the socket is
//! not read, so the server's own flow control holds the rest), pinging as
//! configured.
use std::time::Duration;

use async_trait::async_trait;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::Message;
use futures_util::stream::StreamExt;
use switchyard_core::{now_ms, InboundMessage, Integration, Secret};

use crate::egress::{BuildError, EgressContext};
use crate::ingress::{Handover, Ingress, IngressSink, LinkEvent};
use crate::policy::EgressPolicy;
use crate::shared::{resolve_allowed, Settings};

/// Messages being stored at once, at most.
const IN_FLIGHT: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub basic: Option<(String, Secret)>,
    pub ca: Option<String>,
    pub client: Option<(Secret, Secret)>,
    pub verify: bool,
    pub open_message: Option<String>,
    pub ping: Duration,
}

impl WebSocketConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let config = |e: String| BuildError::Config(e);
        let text = s.required("url")?;
        let url = url::Url::parse(text).map_err(|e| config(format!("url: `{text}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none() {
            return Err(config(format!("url: `{text}` must be a ws:// or wss:// URL with a host")));
        }
        let headers = s
            .strings("headers")?
            .iter()
            .enumerate()
            .map(|(i, line)| crate::shared::header_line(line).map_err(|e| config(format!("headers[{i}]: {e}"))))
            .collect::<Result<_, _>>()?;
        let basic = match s.text("username")? {
            Some(user) => Some((user.to_owned(), s.secret("password")?.unwrap_or_else(|| Secret::new("")))),
            None => None,
        };
        let client = match (s.secret("clientCertificate")?, s.secret("privateKey")?) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        };
        Ok(Self {
            url,
            headers,
            basic,
            ca: s.text("caCertificate")?.map(str::to_owned),
            client,
            verify: s.flag("verifyTls")?,
            open_message: s.text("openMessage")?.map(str::to_owned),
            ping: Duration::from_secs_f64(s.number("pingIntervalSeconds")?.unwrap_or(30.0)),
        })
    }
}

pub struct WebSocketIngress {
    config: WebSocketConfig,
    policy: EgressPolicy,
    /// Each message's topic: the URL's path.
    topic: String,
}

impl WebSocketIngress {
    pub fn new(config: WebSocketConfig, ctx: &EgressContext) -> Self {
        let path = config.url.path().trim_matches('/');
        let topic =
            if path.is_empty() { config.url.host_str().unwrap_or_default().to_owned() } else { path.to_owned() };
        Self { config, policy: ctx.policy.clone(), topic }
    }

    fn message(&self, payload: Vec<u8>) -> InboundMessage {
        InboundMessage { source_ref: self.topic.clone(), payload, received_at: now_ms(), ..Default::default() }
    }

    async fn open(
        &self,
    ) -> Result<async_tungstenite::WebSocketStream<async_tungstenite::tokio::TokioAdapter<Box<dyn Stream>>>, String>
    {
        let url = &self.config.url;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs = resolve_allowed(&self.policy, host, port).await?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addrs[..]))
            .await
            .map_err(|_| format!("{host}:{port} did not answer within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("{host}:{port} could not be reached: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if url.scheme() == "wss" {
            let client = self.config.client.as_ref().map(|(c, k)| (c, k));
            let tls = crate::tls::client_config(self.config.ca.as_deref(), client, self.config.verify)?;
            let name = rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| format!("{host}: {e}"))?;
            let connector = tokio_rustls::TlsConnector::from(tls);
            Box::new(connector.connect(name, tcp).await.map_err(|e| format!("TLS with {host} failed: {e}"))?)
        } else {
            Box::new(tcp)
        };
        let mut request = url.as_str().into_client_request().map_err(|e| e.to_string())?;
        for (name, value) in &self.config.headers {
            let (name, value) =
                (http::HeaderName::try_from(name.as_str()), http::HeaderValue::try_from(value.as_str()));
            if let (Ok(name), Ok(value)) = (name, value) {
                request.headers_mut().insert(name, value);
            }
        }
        if let Some((user, password)) = &self.config.basic {
            let auth = crate::http::basic_auth(user, password.expose());
            request.headers_mut().insert(http::header::AUTHORIZATION, auth.parse().map_err(|_| "bad credentials")?);
        }
        let handshake = async_tungstenite::tokio::client_async(request, stream);
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| format!("the WebSocket handshake with {host} did not finish within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("the WebSocket handshake with {host} failed: {e}"))?;
        Ok(ws)
    }
}

/// A TCP or TLS stream.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

#[async_trait]
impl Ingress for WebSocketIngress {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        let mut ws = tokio::select! {
            opened = self.open() => opened?,
            _ = sink.stopping() => return Ok(()),
        };
        if let Some(text) = &self.config.open_message {
            ws.send(Message::Text(text.as_str().into()))
                .await
                .map_err(|e| format!("sending the opening message: {e}"))?;
        }
        sink.link(LinkEvent::Connected);
        let mut ping = tokio::time::interval(self.config.ping);
        ping.tick().await;
        let (mut unanswered, mut silent) = (0u32, false);
        let mut pending = Handover::new(sink);
        let result = loop {
            tokio::select! {
                _ = sink.stopping() => break Ok(()),
                Some(((), stored)) = pending.next(), if !pending.is_empty() => {
                    if let Err(e) = stored {
                        break Err(e);
                    }
                }
                frame = ws.next(), if pending.len() < IN_FLIGHT => {
                    let frame = match frame {
                        None => break Err("the server ended the connection".to_owned()),
                        Some(Err(e)) => break Err(format!("the connection failed: {e}")),
                        Some(Ok(frame)) => frame,
                    };
                    // Anything from the server shows the link is alive.
                    unanswered = 0;
                    if std::mem::take(&mut silent) {
                        sink.link(LinkEvent::Connected);
                    }
                    match frame {
                        Message::Text(text) => pending.push((), self.message(text.as_bytes().to_vec())),
                        Message::Binary(bytes) => pending.push((), self.message(bytes.to_vec())),
                        Message::Close(frame) => {
                            let why = frame.map(|f| format!(": {} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                            break Err(format!("the server closed the connection{why}"));
                        }
                        _ => {}
                    }
                }
                _ = ping.tick() => {
                    let every = self.config.ping.as_secs_f64();
                    if unanswered >= 2 {
                        break Err(format!("no pong for {:.0} s: the link is dead", every * 2.0));
                    }
                    if unanswered == 1 {
                        silent = true;
                        sink.link(LinkEvent::Silent(format!("no pong within {every:.0} s")));
                    }
                    if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                        break Err(format!("sending a ping failed: {e}"));
                    }
                    unanswered += 1;
                }
            }
        };
        // What is being stored finishes; nothing needs acknowledging.
        while pending.next().await.is_some() {}
        if result.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        }
        result
    }
}
