//! The HTTP client every HTTP-based connector sends with: hyper-util's
//! pooled client over rustls, names resolved through the egress policy (so a
//! name that resolves to a private address is refused at connect time), no
//! redirects ever followed (a 3xx is an answer like any other), and one
//! deadline per call covering the connection, the request and the answer.
//!
//! reqwest, which wraps the same client, spent about 8 µs of CPU more per
//! request on this path (its redirect and retry layers, and URL parsing on
//! every request and response), a third of a webhook delivery's cost; see
//! docs/benchmarks.md.
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::policy::{Blocked, EgressPolicy};

/// How much of an answer connectors read to parse it (ids, error codes).
pub const ANSWER_MAX: usize = 1 << 20;

const USER_AGENT: &str = concat!("Switchyard/", env!("CARGO_PKG_VERSION"));

type Connector = hyper_rustls::HttpsConnector<PolicyConnector>;

/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    policy: EgressPolicy,
}

impl HttpClient {
    /// Keeps up to `idle_per_host` idle connections to each host.
    pub fn new(policy: EgressPolicy, idle_per_host: usize) -> Self {
        let mut tcp = HttpConnector::new_with_resolver(PolicyResolver(policy.clone()));
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let tcp = PolicyConnector { tcp, policy: policy.clone() };
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Self { client, policy }
    }

    /// Why the egress policy refuses `url`'s literal address, if it does:
    /// for connectors to check a fixed target before any rendering or
    /// signing work (connecting refuses it again, and checks names).
    pub fn refuses(&self, url: &str) -> Option<Blocked> {
        let host = url.parse::<http::Uri>().ok()?.host()?.to_owned();
        self.policy.check_host(&host).err()
    }

    /// Sends `request` (a `User-Agent` is added when it has none) and waits
    /// for the answer's head, all within `timeout`; the answer's body must be
    /// read within the same deadline.
    pub async fn send(&self, mut request: http::Request<Bytes>, timeout: Duration) -> Result<Answer, HttpError> {
        let deadline = Instant::now() + timeout;
        request.headers_mut().entry(header::USER_AGENT).or_insert(HeaderValue::from_static(USER_AGENT));
        let request = request.map(Full::new);
        match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(Answer { response, deadline }),
            Ok(Err(e)) => Err(HttpError::from_client(&e)),
            Err(_) => Err(HttpError::timed_out(timeout)),
        }
    }

    /// A POST of `body` to `uri` with the given headers.
    pub async fn post(
        &self,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Answer, HttpError> {
        let mut request = http::Request::post(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.into()).map_err(|e| HttpError::invalid(&e))?;
        self.send(request, timeout).await
    }
}

/// `Authorization: Basic …` for a user and password.
pub fn basic_auth(username: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

/// An `application/x-www-form-urlencoded` body.
pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

/// The far side's answer: its head, and its body still to read.
pub struct Answer {
    response: http::Response<hyper::body::Incoming>,
    deadline: Instant,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    pub fn headers(&self) -> &http::HeaderMap {
        self.response.headers()
    }

    /// The delay the far side asked for in `Retry-After`, if it asked.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
        parse_retry_after(value, std::time::SystemTime::now())
    }

    /// The body's first `limit` bytes at most (whole chunks as they come, so
    /// a little more), before the deadline; whatever was read when reading
    /// failed or the deadline passed.
    pub async fn bytes(self, limit: usize) -> Vec<u8> {
        let mut body = self.response.into_body();
        let mut buf = Vec::new();
        while buf.len() < limit {
            match tokio::time::timeout_at(self.deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        buf.extend_from_slice(data);
                    }
                }
                _ => break,
            }
        }
        buf
    }

    /// The body as it streams in, for answers that do not end (an event
    /// stream): the caller bounds each read itself.
    pub fn into_body(self) -> hyper::body::Incoming {
        self.response.into_body()
    }

    /// The body as text (lossy), at most `limit` bytes of it.
    pub async fn text(self, limit: usize) -> String {
        String::from_utf8_lossy(&self.bytes(limit).await).into_owned()
    }
}

/// `Retry-After` as seconds or an HTTP date: the one parser every connector
/// uses. How long a delay is honoured is the engine's to bound
/// (`retry::RETRY_AFTER_MAX`), for every connector alike.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => Some(httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or(Duration::ZERO)),
    }
}

/// Why a call got no answer, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    kind: ErrorKind,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    /// The egress policy refused the address (retrying cannot help).
    Blocked,
    TimedOut,
    /// The request itself cannot be made (an invalid header, say).
    Invalid,
    Transport,
}

impl HttpError {
    fn from_client(e: &hyper_util::client::legacy::Error) -> Self {
        let mut text = e.to_string();
        let mut kind = ErrorKind::Transport;
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            if cause.downcast_ref::<Blocked>().is_some() {
                kind = ErrorKind::Blocked;
            }
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self { kind, text }
    }

    fn timed_out(after: Duration) -> Self {
        Self {
            kind: ErrorKind::TimedOut,
            text: format!("timed out: no answer within {}", humantime::format_duration(after)),
        }
    }

    fn invalid(e: &http::Error) -> Self {
        Self { kind: ErrorKind::Invalid, text: format!("the request cannot be made: {e}") }
    }

    /// The egress policy refused the target's address.
    pub fn is_blocked(&self) -> bool {
        self.kind == ErrorKind::Blocked
    }

    /// Retrying cannot help: the address is refused, or the request is invalid.
    pub fn is_permanent(&self) -> bool {
        matches!(self.kind, ErrorKind::Blocked | ErrorKind::Invalid)
    }

    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::TimedOut
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for HttpError {}

/// Connects as hyper's connector does, after refusing a literal address the
/// egress policy does not allow: the connector takes a literal host as it is
/// and never asks the resolver (which checks names).
#[derive(Clone)]
struct PolicyConnector {
    tcp: HttpConnector<PolicyResolver>,
    policy: EgressPolicy,
}

impl tower_service::Service<http::Uri> for PolicyConnector {
    type Response = <HttpConnector<PolicyResolver> as tower_service::Service<http::Uri>>::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        if let Err(blocked) = self.policy.check_host(uri.host().unwrap_or_default()) {
            return Box::pin(std::future::ready(Err(Box::new(blocked) as Self::Error)));
        }
        let connecting = self.tcp.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// Resolves names for the connector and keeps only the addresses the egress
/// policy allows; none left is an error naming the first address refused.
#[derive(Clone)]
struct PolicyResolver(EgressPolicy);

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.iter().copied().filter(|a| policy.check(a.ip()).is_ok()).collect();
            match (allowed.is_empty(), addrs.first()) {
                (false, _) => Ok(allowed.into_iter()),
                (true, Some(first)) => Err(Box::new(Blocked(first.ip())) as Self::Error),
                (true, None) => Err(format!("{host} has no addresses").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        // RFC 7617's example.
        assert_eq!(basic_auth("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn retry_after_forms() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("999999999999", now), Some(Duration::from_secs(999_999_999_999)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn forms_are_url_encoded() {
        assert_eq!(form(&[("To", "+1 555"), ("Body", "a&b=c")]), "To=%2B1+555&Body=a%26b%3Dc");
    }

    #[tokio::test]
    async fn literal_addresses_are_refused_in_every_spelling() {
        // A listener on loopback: a connection that got through would be answered.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = HttpClient::new(EgressPolicy::default(), 1);
        for host in ["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::1]"] {
            let url = format!("http://{host}:{port}/x");
            let e = client.post(&url, &[], "", Duration::from_secs(5)).await.err().unwrap();
            assert!(e.is_blocked() && e.is_permanent(), "{url}: {e}");
            assert!(e.to_string().contains("not a public address"), "{e}");
            let e = client.post(&url.replace("http:", "https:"), &[], "", Duration::from_secs(5)).await.err().unwrap();
            assert!(e.is_blocked(), "{url} over TLS: {e}");
        }
        let allowed = HttpClient::new(EgressPolicy::new(EgressPolicy::parse_list("127.0.0.1/32").unwrap()), 1);
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            let _ = tokio::io::AsyncWriteExt::write_all(&mut socket, b"HTTP/1.1 204 No Content\r\n\r\n").await;
        });
        let answer = allowed.post(&format!("http://127.0.0.1:{port}/x"), &[], "", Duration::from_secs(5)).await;
        assert_eq!(answer.unwrap().status(), 204, "an allowed literal is reached");
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let client = HttpClient::new(EgressPolicy::default(), 1);
        let e = client.post("http://localhost:9/x", &[], "", Duration::from_secs(5)).await.err().unwrap();
        assert!(e.is_blocked() && e.is_permanent(), "{e}");
        assert!(e.to_string().contains("not a public address"), "{e}");
    }
}
