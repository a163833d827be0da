//! The sink a receiver hands its messages to: paced by the integration's
//! rate limit (a message over it waits, unacknowledged at its source), then
//! decoded, mapped and stored by [`Engine::receive`], and counted.
//!
//! [`Engine::receive`]: crate::Engine::receive
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use switchyard_connectors::decode::Decoder;
use switchyard_connectors::{IngressSink, LinkEvent};
use switchyard_core::{now_ms, InboundMessage, IntegrationId, MessageOutcome, OrgId};
use tokio_util::sync::CancellationToken;

use super::status::{Connection, ConnectionState};
use crate::limits::TokenBucket;
use crate::Engine;

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
}

impl Sink {
    pub(super) fn new(
        engine: Arc<Engine>,
        org: OrgId,
        integration: IntegrationId,
        decoder: Decoder,
        connection: Arc<Connection>,
        stop: CancellationToken,
    ) -> Self {
        let bucket = Mutex::new(TokenBucket::new(decoder.rate, Instant::now()));
        Self { engine, org, integration, decoder, connection, bucket, order: Default::default(), stop }
    }
}

#[async_trait]
impl IngressSink for Sink {
    async fn message(&self, message: InboundMessage) -> Result<MessageOutcome, String> {
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
        let (outcome, records) = self
            .engine
            .receive(&self.org, &self.integration, &self.decoder, message, &self.order)
            .await
            .map_err(|e| format!("the message could not be stored: {e}"))?;
        self.connection.outcome(outcome, records);
        Ok(outcome)
    }

    fn link(&self, event: LinkEvent) {
        match event {
            LinkEvent::Connected => self.connection.set(ConnectionState::Connected, None),
            LinkEvent::Silent(why) => self.connection.set(ConnectionState::Silent, Some(why)),
        }
    }

    async fn stopping(&self) {
        self.stop.cancelled().await
    }
}
