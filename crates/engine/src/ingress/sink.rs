//! The sink a receiver hands its messages to: paced by the integration's
//! rate limit (a message over it waits, unacknowledged at its source), then
//! decoded, mapped and stored by [`Engine::receive`], and counted. An
//! endpoint's requests are offered instead: over the limit, one is refused
//! with how long to wait, as its caller is told (429 and `Retry-After`).
//!
//! [`Engine::receive`]: crate::Engine::receive
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::json;
use switchyard_connectors::decode::Decoder;
use switchyard_connectors::ingress::{Storing, Taken};
use switchyard_connectors::poll::Backfill;
use switchyard_connectors::{IngressSink, LinkEvent};
use switchyard_core::{now_ms, ActionId, ActionStatus, InboundMessage, IntegrationId, OrgId};
use switchyard_store::{ActionFilter, PageRequest};
use tokio_util::sync::CancellationToken;

use super::status::{Connection, ConnectionState};
use crate::limits::TokenBucket;
use crate::{Engine, Received};

pub(super) struct Sink {
    engine: Arc<Engine>,
    org: OrgId,
    integration: IntegrationId,
    decoder: Decoder,
    connection: Arc<Connection>,
    bucket: Mutex<TokenBucket>,
    /// Messages are stored in the order they arrive (see `Engine::receive`).
    order: tokio::sync::Mutex<()>,
    stop: CancellationToken,
    /// The lease this node runs the integration by, with several nodes.
    fence: Option<switchyard_store::Fence>,
    /// Told when a backfill is asked of the integration on this node.
    asked: Arc<tokio::sync::Notify>,
}

/// With several nodes, how often a receiver looks for backfills asked on another node.
const BACKFILLS_ELSEWHERE: std::time::Duration = std::time::Duration::from_secs(15);

impl Sink {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        engine: Arc<Engine>,
        org: OrgId,
        integration: IntegrationId,
        decoder: Decoder,
        connection: Arc<Connection>,
        stop: CancellationToken,
        fence: Option<switchyard_store::Fence>,
        asked: Arc<tokio::sync::Notify>,
    ) -> Self {
        let bucket = Mutex::new(TokenBucket::new(decoder.rate, Instant::now()));
        let order = Default::default();
        Self { engine, org, integration, decoder, connection, bucket, order, stop, fence, asked }
    }
}

/// Why an offered message was not taken.
#[derive(Debug)]
pub(crate) enum Declined {
    /// Over the rate limit: there is room again after this long.
    Throttled(std::time::Duration),
    /// Nothing was stored (the store failed, or the sink is stopping).
    Unavailable(String),
}

impl Sink {
    /// Takes a message if the rate limit has room for it now.
    pub(super) async fn offer(&self, message: InboundMessage) -> Result<Received, Declined> {
        let room = self.bucket.lock().unwrap_or_else(|e| e.into_inner()).try_take(Instant::now());
        if let Err(wait) = room {
            self.connection.throttled(now_ms() + wait.as_millis() as i64);
            return Err(Declined::Throttled(wait));
        }
        if self.stop.is_cancelled() {
            return Err(Declined::Unavailable("the integration is being restarted".into()));
        }
        self.connection.received();
        let storing = self.store(message).await.map_err(Declined::Unavailable)?;
        storing.await.map_err(Declined::Unavailable)
    }

    /// Queues the message to be stored; what it returns resolves once it is, counted.
    async fn store(
        &self,
        message: InboundMessage,
    ) -> Result<impl std::future::Future<Output = Result<Received, String>> + Send + 'static, String> {
        let failed = |e: crate::IngestError| format!("the message could not be stored: {e}");
        let committing = self
            .engine
            .receive(&self.org, &self.integration, &self.decoder, message, &self.order, self.fence.as_ref())
            .await
            .map_err(failed)?;
        let connection = self.connection.clone();
        Ok(async move {
            let received = committing.await.map_err(failed)?;
            connection.outcome(received.outcome, received.records);
            Ok(received)
        })
    }
}

#[async_trait]
impl IngressSink for Sink {
    async fn message(&self, message: InboundMessage) -> Result<Storing, String> {
        self.connection.received();
        let wait = self.bucket.lock().unwrap_or_else(|e| e.into_inner()).take(Instant::now());
        if !wait.is_zero() {
            self.connection.throttled(now_ms() + wait.as_millis() as i64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                // Stopping: what still waits is not taken; the source sends it again.
                _ = self.stop.cancelled() => return Err("stopping: the message was not taken".into()),
            }
        }
        let storing = self.store(message).await?;
        Ok(Box::pin(async move { storing.await.map(|r| Taken { outcome: r.outcome, records: r.records }) }))
    }

    fn link(&self, event: LinkEvent) {
        match event {
            LinkEvent::Connected => self.connection.set(ConnectionState::Connected, None),
            LinkEvent::Silent(why) => self.connection.set(ConnectionState::Silent, Some(why)),
            LinkEvent::Polled(report) => self.connection.polled(report),
        }
    }

    async fn progress(&self, name: &str) -> Option<String> {
        match self.engine.store.get_progress(&self.org, &self.integration, name).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(integration = %self.integration, error = %e, "reading the receiver's progress failed");
                None
            }
        }
    }

    async fn save_progress(&self, name: &str, value: &str) -> Result<(), String> {
        self.engine.store.set_progress(&self.org, &self.integration, name, value).await.map_err(|e| e.to_string())
    }

    async fn stopping(&self) {
        self.stop.cancelled().await
    }

    async fn backfill(&self) -> Result<Option<Backfill>, String> {
        let filter = ActionFilter {
            integration: Some(self.integration.clone()),
            kind: Some(crate::actions::BACKFILL.to_owned()),
            statuses: vec![ActionStatus::Queued, ActionStatus::Running],
        };
        let page = PageRequest { limit: 100, after: None };
        let found = self.engine.store.list_actions(&self.org, &filter, &page).await.map_err(|e| e.to_string())?;
        // Newest first: the oldest asked runs first.
        let Some(action) = found.items.into_iter().last() else { return Ok(None) };
        let time = |name: &str| action.params.get(name).and_then(serde_json::Value::as_i64).unwrap_or(0);
        // A new one's progress is `{}`: it starts at `from`.
        let mut job: Backfill = serde_json::from_value(action.progress.clone()).unwrap_or_default();
        (job.id, job.from, job.to) = (action.id.to_string(), time("from"), time("to"));
        job.position = job.position.clamp(job.from, job.to);
        Ok(Some(job))
    }

    async fn backfill_progress(&self, job: &Backfill, end: Option<Result<(), String>>) -> Result<bool, String> {
        let id = ActionId::parse(&job.id).map_err(|e| e.to_string())?;
        let store = &self.engine.store;
        let Some(mut action) = store.get_action(&self.org, &id).await.map_err(|e| e.to_string())? else {
            return Ok(false); // deleted with its integration
        };
        if !action.status.is_unfinished() {
            return Ok(false);
        }
        let now = now_ms();
        action.progress = serde_json::to_value(job).unwrap_or_default();
        action.updated_at = now;
        action.status = match &end {
            None => ActionStatus::Running,
            Some(Ok(())) => ActionStatus::Succeeded,
            Some(Err(_)) => ActionStatus::Failed,
        };
        if let Some(end) = end {
            action.finished_at = Some(now);
            action.result = Some(json!({"pages": job.pages, "messages": job.messages, "records": job.records}));
            action.error = end.err();
        }
        store.update_action(&self.org, &action).await.map_err(|e| e.to_string())
    }

    async fn kept_secret(&self, name: &str) -> Option<switchyard_core::Secret> {
        match self.engine.store.get_kept_secret(&self.org, &self.integration, name).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(integration = %self.integration, error = %e, "reading a kept secret failed");
                None
            }
        }
    }

    async fn keep_secret(&self, name: &str, value: &switchyard_core::Secret) -> Result<(), String> {
        self.engine.store.set_kept_secret(&self.org, &self.integration, name, value).await.map_err(|e| e.to_string())
    }

    async fn backfill_asked(&self) {
        if self.fence.is_some() {
            tokio::select! {
                _ = self.asked.notified() => {}
                _ = tokio::time::sleep(BACKFILLS_ELSEWHERE) => {}
            }
        } else {
            self.asked.notified().await
        }
    }
}
