//! The Particle receiver: one GET of the event stream with the access token
//! as a bearer, its events handed to the sink as they arrive (up to
//! `IN_FLIGHT` being stored; beyond that the stream is not read).
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http_body_util::BodyExt;
use serde_json::Value;
use switchyard_core::{now_ms, InboundMessage, Integration, Secret};

use super::sse::{Event, Parser};
use crate::egress::{BuildError, EgressContext};
use crate::ingress::{Handover, Ingress, IngressSink, LinkEvent};
use crate::shared::Settings;

const IN_FLIGHT: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Which events are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Exact(String),
    Prefix(String),
}

impl Filter {
    fn matches(&self, name: &str) -> bool {
        match self {
            Filter::Exact(n) => name == n,
            Filter::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ParticleConfig {
    token: Secret,
    /// The stream's URL.
    pub url: String,
    filters: Vec<Filter>,
    keep_alive: Duration,
}

impl ParticleConfig {
    pub fn from_integration(i: &Integration) -> Result<Self, BuildError> {
        let s = Settings::of(i)?;
        let filters: Vec<Filter> = s
            .strings("eventNames")?
            .into_iter()
            .filter(|n| n != "*")
            .map(|n| match n.strip_suffix('*') {
                Some(stem) => Filter::Prefix(stem.to_owned()),
                None => Filter::Exact(n),
            })
            .collect();
        let everything = s.strings("eventNames")?.iter().any(|n| n == "*");
        let filters = if everything { vec![] } else { filters };
        let base = s.required("apiUrl")?;
        let mut url = url::Url::parse(base).map_err(|e| BuildError::Config(format!("apiUrl: `{base}`: {e}")))?;
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| BuildError::Config(format!("apiUrl: `{base}` cannot be a base")))?;
            path.pop_if_empty().push("v1");
            match (s.text("product")?, s.text("organization")?, s.text("deviceId")?) {
                (Some(product), _, device) => {
                    path.extend(["products", product]);
                    if let Some(device) = device {
                        path.extend(["devices", device]);
                    }
                }
                (None, Some(org), _) => {
                    path.extend(["orgs", org]);
                }
                (None, None, Some(device)) => {
                    path.extend(["devices", device]);
                }
                (None, None, None) => {
                    path.push("devices");
                }
            }
            path.push("events");
            // One name or prefix is asked of Particle (its filter is a prefix match).
            if let [Filter::Exact(stem) | Filter::Prefix(stem)] = filters.as_slice() {
                path.push(stem);
            }
        }
        Ok(Self {
            token: s.need_secret("accessToken")?,
            url: url.to_string(),
            filters,
            keep_alive: Duration::from_secs_f64(s.number("keepAliveTimeoutSeconds")?.unwrap_or(13.0)),
        })
    }

    fn wanted(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| f.matches(name))
    }
}

pub struct ParticleIngress {
    config: ParticleConfig,
    http: crate::http::HttpClient,
    /// The delay the stream asked for (`retry:`), and when the link last ended.
    retry: Option<(Duration, Instant)>,
}

impl ParticleIngress {
    pub fn new(config: ParticleConfig, ctx: &EgressContext) -> Self {
        Self { config, http: ctx.http.clone(), retry: None }
    }

    /// An event as a message: its data is the payload; the device, the time
    /// and the name are attributes, and together its id.
    fn message(event: &Event) -> InboundMessage {
        let body: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        let field = |k: &str| match &body[k] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        };
        let (coreid, published_at) = (field("coreid"), field("published_at"));
        let dedup_key = match (&coreid, &published_at) {
            (Some(c), Some(p)) => Some(format!("{c}/{p}/{}", event.name)),
            _ => None,
        };
        let mut attributes = vec![("event".to_owned(), event.name.clone())];
        for (k, v) in [("coreid", coreid), ("published_at", published_at), ("ttl", field("ttl"))] {
            if let Some(v) = v {
                attributes.push((k.to_owned(), v));
            }
        }
        let payload = match body.get("data") {
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(other) => other.to_string().into_bytes(),
            None => event.data.clone().into_bytes(),
        };
        InboundMessage {
            source_ref: event.name.clone(),
            dedup_key,
            attributes,
            payload,
            received_at: now_ms(),
            progress: vec![],
        }
    }

    async fn stream(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        let request = http::Request::get(&self.config.url)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.config.token.expose()))
            .header(http::header::ACCEPT, "text/event-stream")
            .body(bytes::Bytes::new())
            .map_err(|e| e.to_string())?;
        let answer = tokio::select! {
            a = self.http.send(request, CONNECT_TIMEOUT) => a.map_err(|e| format!("Particle could not be reached: {e}"))?,
            _ = sink.stopping() => return Ok(()),
        };
        let status = answer.status();
        if status != 200 {
            let text = answer.text(4096).await;
            let why = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error_description"].as_str().or(v["error"].as_str()).map(str::to_owned))
                .unwrap_or(text);
            return Err(format!("Particle answered {status}: {}", why.trim()));
        }
        sink.link(LinkEvent::Connected);
        let mut body = answer.into_body();
        let mut parser = Parser::default();
        let mut pending = Handover::new(sink);
        let mut seen = Instant::now();
        let result = loop {
            let quiet = tokio::time::sleep_until((seen + self.config.keep_alive).into());
            tokio::select! {
                _ = sink.stopping() => break Ok(()),
                Some(((), stored)) = pending.next(), if !pending.is_empty() => {
                    if let Err(e) = stored {
                        break Err(e);
                    }
                }
                _ = quiet, if pending.len() < IN_FLIGHT => {
                    break Err(format!("nothing from the stream for {:.0} s", self.config.keep_alive.as_secs_f64()));
                }
                frame = body.frame(), if pending.len() < IN_FLIGHT => {
                    let data = match frame {
                        None => break Err("Particle ended the stream".to_owned()),
                        Some(Err(e)) => break Err(format!("the stream failed: {e}")),
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => data,
                            Err(_) => continue,
                        },
                    };
                    seen = Instant::now();
                    for event in parser.feed(&data) {
                        if self.config.wanted(&event.name) {
                            pending.push((), Self::message(&event));
                        }
                    }
                }
            }
        };
        while pending.next().await.is_some() {}
        if let Some(ms) = parser.retry {
            self.retry = Some((Duration::from_millis(ms), Instant::now()));
        }
        result
    }
}

#[async_trait]
impl Ingress for ParticleIngress {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        // The stream asked for a delay before it is opened again.
        if let Some((delay, since)) = self.retry {
            tokio::select! {
                _ = tokio::time::sleep_until((since + delay).into()) => {}
                _ = sink.stopping() => return Ok(()),
            }
        }
        self.stream(sink).await
    }
}
