//! Sending one record to the webhook endpoint.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use switchyard_core::delivery::{excerpt, RESPONSE_EXCERPT_MAX};

use super::classify::classify_status;
use super::config::{Auth, WebhookConfig};
use super::digest;
use super::sign::signature_header;
use crate::egress::{BuildError, Egress, EgressContext, Outbound, Outcome, Response, SendResult};
use crate::http::{basic_auth, HttpClient};
use crate::shared::Template;
use sha2::Digest as _;
use switchyard_core::{Metadata, RecordKind};

pub struct WebhookEgress {
    http: HttpClient,
    config: WebhookConfig,
    /// The compiled body template, if any.
    template: Option<Template>,
    /// Per record kind: the target, parsed once (or why it cannot be).
    targets: Vec<(RecordKind, String, Result<http::Uri, String>)>,
    /// The last Digest challenge, reused (with a growing nonce count) until refused.
    digest: Mutex<Option<digest::Challenge>>,
    nonce_count: AtomicU32,
}

impl WebhookEgress {
    pub fn new(config: WebhookConfig, globals: &Metadata, ctx: &EgressContext) -> Result<Self, BuildError> {
        let template = match &config.body_template {
            Some(source) => Some(Template::lenient("bodyTemplate", source, globals)?),
            None => None,
        };
        let targets = RecordKind::ALL
            .into_iter()
            .map(|kind| {
                let target = config.url_for(kind);
                let url = url::Url::parse(&target)
                    .map_err(|e| e.to_string())
                    .and_then(|u| u.as_str().parse::<http::Uri>().map_err(|e| e.to_string()))
                    .map_err(|e| format!("invalid URL: {e}"));
                (kind, target, url)
            })
            .collect();
        Ok(Self {
            http: ctx.http.clone(),
            config,
            template,
            targets,
            digest: Mutex::new(None),
            nonce_count: AtomicU32::new(0),
        })
    }

    /// The request body: the record's JSON, or the template rendered from it.
    fn body<'m>(&self, message: &'m Outbound<'_>) -> Result<std::borrow::Cow<'m, str>, String> {
        let Some(template) = &self.template else { return Ok(std::borrow::Cow::Borrowed(message.body)) };
        template.render(message.record, &[]).map(std::borrow::Cow::Owned)
    }

    fn request(
        &self,
        uri: http::Uri,
        webhook_id: &str,
        delivery_ids: Option<&str>,
        body: &str,
        timestamp: i64,
        authorization: Option<String>,
    ) -> Result<http::Request<Bytes>, http::Error> {
        let mut req = http::Request::builder()
            .method(self.config.method.clone())
            .uri(uri)
            .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp);
        if !self.config.keys.is_empty() {
            let signature = signature_header(&self.config.keys, webhook_id, timestamp, body.as_bytes());
            req = req.header("webhook-signature", signature);
        }
        if let Some(ids) = delivery_ids {
            req = req.header("switchyard-delivery-ids", ids);
        }
        for (name, value) in &self.config.headers {
            req = req.header(name, value);
        }
        let authorization = match &self.config.auth {
            Auth::Basic { username, password } => Some(basic_auth(username, password.expose())),
            Auth::Bearer(token) => Some(format!("Bearer {}", token.expose())),
            Auth::Digest { .. } | Auth::None => authorization,
        };
        if let Some(value) = authorization {
            req = req.header(header::AUTHORIZATION, value);
        }
        req.body(Bytes::copy_from_slice(body.as_bytes()))
    }

    fn digest_header(&self, url: &http::Uri, challenge: &digest::Challenge) -> Option<String> {
        let Auth::Digest { username, password } = &self.config.auth else { return None };
        let uri = url.path_and_query().map_or("/", |p| p.as_str());
        let nc = self.nonce_count.fetch_add(1, Ordering::Relaxed) + 1;
        Some(digest::authorization(
            challenge,
            username,
            password.expose(),
            self.config.method.as_str(),
            uri,
            nc,
            &digest::cnonce(),
        ))
    }
}

#[async_trait]
impl Egress for WebhookEgress {
    async fn send(&self, message: &Outbound<'_>) -> SendResult {
        self.post(message.record.kind, message.delivery_id, None, self.body(message)).await
    }

    /// One request with a JSON array of records. Its `webhook-id` is derived
    /// from the deliveries it carries; `switchyard-delivery-ids` lists them, so
    /// a receiver can deduplicate record by record across retries.
    async fn send_batch(&self, messages: &[Outbound<'_>]) -> SendResult {
        let ids: Vec<&str> = messages.iter().map(|m| m.delivery_id).collect();
        let joined = ids.join(",");
        let batch_id = format!("bat_{}", &hex::encode(sha2::Sha256::digest(joined.as_bytes()))[..26]);
        let body = messages
            .iter()
            .map(|m| self.body(m))
            .collect::<Result<Vec<_>, String>>()
            .map(|bodies| std::borrow::Cow::Owned(format!("[{}]", bodies.join(","))));
        self.post(messages[0].record.kind, &batch_id, Some(&joined), body).await
    }

    fn rate_limit(&self) -> Option<f64> {
        self.config.rate_limit
    }

    fn batching(&self) -> Option<(usize, std::time::Duration)> {
        self.config.batch
    }
}

impl WebhookEgress {
    async fn post(
        &self,
        kind: RecordKind,
        webhook_id: &str,
        delivery_ids: Option<&str>,
        body: Result<std::borrow::Cow<'_, str>, String>,
    ) -> SendResult {
        let (_, target, url) = self.targets.iter().find(|(k, _, _)| *k == kind).expect("a target for every kind");
        let fail = |outcome: Outcome| SendResult {
            sent: None,
            outcome,
            response: Response::default(),
            target: target.clone(),
        };
        let url = match url {
            Ok(u) => u.clone(),
            Err(e) => return fail(Outcome::Reject { reason: e.clone(), deactivate: false }),
        };
        // Refused before any signing work (the connector refuses it again at connect time).
        if let Some(blocked) = self.http.refuses(target) {
            return fail(Outcome::Reject { reason: blocked.to_string(), deactivate: false });
        }
        let body = match body {
            Ok(b) => b,
            Err(reason) => return fail(Outcome::Reject { reason, deactivate: false }),
        };
        let timestamp =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let cached = self.digest.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut authorization = cached.as_ref().and_then(|c| self.digest_header(&url, c));
        let mut tries = 0;
        let response = loop {
            tries += 1;
            let request =
                match self.request(url.clone(), webhook_id, delivery_ids, &body, timestamp, authorization.take()) {
                    Ok(r) => r,
                    Err(e) => {
                        let reason = format!("the request cannot be made: {e}");
                        return fail(Outcome::Reject { reason, deactivate: false });
                    }
                };
            let response = match self.http.send(request, self.config.timeout).await {
                Ok(r) => r,
                Err(e) => {
                    let reason = e.to_string();
                    return fail(if e.is_permanent() {
                        Outcome::Reject { reason, deactivate: false }
                    } else {
                        Outcome::Retry { after: None, reason }
                    });
                }
            };
            // Digest: answer a (new or stale) challenge once per send.
            if response.status() == 401 && tries == 1 && matches!(self.config.auth, Auth::Digest { .. }) {
                let challenges = response.headers().get_all(header::WWW_AUTHENTICATE);
                if let Some(challenge) = digest::parse_challenges(challenges.iter().filter_map(|v| v.to_str().ok())) {
                    authorization = self.digest_header(&url, &challenge);
                    *self.digest.lock().unwrap_or_else(|e| e.into_inner()) = Some(challenge);
                    continue;
                }
            }
            break response;
        };
        let sent = body;
        let status = response.status();
        let outcome = classify_status(status, response.retry_after());
        let body = response.bytes(RESPONSE_EXCERPT_MAX).await;
        let body = (!body.is_empty()).then(|| excerpt(&String::from_utf8_lossy(&body), RESPONSE_EXCERPT_MAX));
        // The id the receiver was given (webhook-id) is the message's id in the log.
        let remote_id = (outcome == Outcome::Delivered).then(|| webhook_id.to_owned());
        let result = SendResult {
            sent: None,
            outcome,
            response: Response { status: Some(status), remote_id, excerpt: body },
            target: target.clone(),
        };
        // A rendered template or a batch is not the record the log would show.
        match sent {
            std::borrow::Cow::Owned(rendered) => result.with_sent(&rendered),
            std::borrow::Cow::Borrowed(_) => result,
        }
    }
}
