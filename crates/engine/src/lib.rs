//! The data path: records in, routed by triggers, stored with their fan-out
//! in one transaction, delivered by the outbox dispatcher.
use std::sync::Arc;

use switchyard_connectors::decode::Decoder;
use switchyard_connectors::{EgressContext, EgressPolicy};
use switchyard_core::{
    now_ms, InboundMessage, Integration, IntegrationId, MessageId, MessageOutcome, OrgId, Record, RecordDraft,
    RecordSource,
};
use switchyard_store::{Batch, IngestOutcome, NewDelivery, NewMessage, NewRecord, Store, StoreError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod actions;
pub mod config;
mod dispatcher;
pub mod ingest;
pub mod ingress;
pub mod limits;
mod metrics;
mod resources;
mod retention;
pub mod retry;
pub mod router;
mod writer;

pub use config::{ConfigError, Configuration};
pub use dispatcher::{Circuits, DispatcherConfig, Wake, QUEUE_OVERHEAD, RECORD_OVERHEAD};
pub use ingest::{IngestError, MAX_RECORDS};
pub use limits::{BreakerConfig, CircuitState};
pub use router::Router;

/// A message in the writer's queue: resolves once its round committed.
pub type Committing = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Received, IngestError>> + Send>>;

/// What became of a received message, once durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its entry in the integration's message log.
    pub id: MessageId,
    pub outcome: MessageOutcome,
    /// Records stored from it.
    pub records: usize,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub dispatcher: DispatcherConfig,
    pub egress: EgressPolicy,
    /// How long finished deliveries and unneeded records are kept.
    pub retention: std::time::Duration,
    /// How often retention runs.
    pub retention_interval: std::time::Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            dispatcher: DispatcherConfig::default(),
            egress: EgressPolicy::default(),
            retention: std::time::Duration::from_secs(7 * 24 * 3600),
            retention_interval: std::time::Duration::from_secs(600),
        }
    }
}

pub struct Engine {
    store: Arc<dyn Store>,
    router: Router,
    wake: Wake,
    circuits: Circuits,
    changes: dispatcher::Changes,
    egress: EgressContext,
    metrics: Arc<metrics::Metrics>,
    writer: writer::Writer,
    queues: dispatcher::QueueView,
    ingress: ingress::Supervisor,
}

/// An integration's circuit, as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitStatus {
    pub state: CircuitState,
    /// When it entered that state (ms since the epoch).
    pub since: i64,
    pub consecutive_failures: u32,
}

impl Engine {
    /// Starts the dispatcher. It stops when `shutdown` is cancelled; wait on
    /// `tracker` for in-flight sends to finish.
    pub async fn start(
        store: Arc<dyn Store>,
        config: EngineConfig,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Arc<Engine>, StoreError> {
        if store.backend() == switchyard_store::Backend::Sqlite {
            // One node owns an embedded store: leases left by a crash end now.
            let released = store.release_leases().await?;
            if released > 0 {
                tracing::info!(released, "resuming deliveries left in flight");
            }
        }
        let wake = Wake::default();
        let changes = dispatcher::Changes::default();
        let circuits = Circuits::default();
        let ctx = EgressContext::new(config.egress.clone())
            .with_resources(Arc::new(resources::StoreResources(store.clone())));
        // Actions left running by a stop: on SQLite this node was the only one; on
        // PostgreSQL, only those nobody has touched for five minutes.
        let now = now_ms();
        let stale_before = if store.backend() == switchyard_store::Backend::Sqlite { now } else { now - 5 * 60 * 1000 };
        let failed = store.fail_stale_actions(stale_before, now).await?;
        if failed > 0 {
            tracing::warn!(failed, "actions interrupted by a stop were marked failed");
        }
        let metrics = Arc::new(metrics::Metrics::default());
        retention::spawn(store.clone(), config.retention, config.retention_interval, shutdown.clone(), tracker);
        let (done, results) = tokio::sync::mpsc::unbounded_channel();
        let parts = dispatcher::Parts {
            store: store.clone(),
            ctx: ctx.clone(),
            config: config.dispatcher,
            wake: wake.clone(),
            circuits: circuits.clone(),
            metrics: metrics.clone(),
            changes: changes.clone(),
            done,
        };
        let workers = dispatcher::Workers::new(parts, tracker, &shutdown);
        let flushed = CancellationToken::new();
        dispatcher::spawn(workers.clone(), flushed.clone());
        let queues = workers.view();
        let parts = writer::Parts {
            store: store.clone(),
            workers,
            wake: wake.clone(),
            results,
            flushed,
            metrics: metrics.clone(),
        };
        let writer = writer::Writer::start(parts, tracker);
        let router = Router::new(store.clone());
        let ingress = ingress::Supervisor::default();
        let engine =
            Arc::new(Engine { router, store, wake, circuits, changes, egress: ctx, metrics, writer, queues, ingress });
        engine.ingress.start(&engine, tracker, &shutdown).await?;
        Ok(engine)
    }

    /// The one way records enter: parses the drafts, resolves their devices,
    /// routes and stores them with their source; returns once the round
    /// holding them committed. Invalid drafts are refused with every field's
    /// problem, and then nothing is stored.
    pub async fn ingest(
        &self,
        org: &OrgId,
        source: RecordSource,
        drafts: Vec<RecordDraft>,
    ) -> Result<IngestOutcome, IngestError> {
        let records = ingest::resolve(&self.router, org, &source, drafts).await?;
        let batch = Batch::new(org.clone(), self.route(org, records, &source).await?);
        let outcome = self.writer.ingest(batch).await?;
        self.metrics.accepted(outcome.stored as u64);
        Ok(outcome)
    }

    /// A message an ingress integration received: decoded, mapped and
    /// stored as `ingest` does, with its entry in the message log, in one
    /// round; returns once that committed, with what became of the message
    /// and how many records it stored. A message that does not decode or
    /// map is stored in the log with its reason; one whose source id was
    /// logged before is a duplicate. An `Err` means nothing was stored.
    /// `order`: held from the message's id to its place in the writer's
    /// queue, so one receiver's messages (handed over concurrently) are
    /// stored, and their records numbered, in the order they arrived.
    /// Returns once the message is in the writer's queue (so the next one
    /// may follow), with what resolves once its round committed.
    pub async fn receive(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        decoder: &Decoder,
        message: InboundMessage,
        order: &tokio::sync::Mutex<()>,
        fence: Option<&switchyard_store::Fence>,
    ) -> Result<Committing, IngestError> {
        self.store_message(org, integration, decoder, message, order, None, fence).await
    }

    /// `receive`, or with `replay` the unmapped message logged under that id
    /// run again: stored if it now maps, its entry updated; left as it is if not.
    /// `fence`: the lease the receiving node holds the integration's connection
    /// by (several nodes): the round stores nothing if it is no longer held.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store_message(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        decoder: &Decoder,
        mut message: InboundMessage,
        order: &tokio::sync::Mutex<()>,
        replay: Option<MessageId>,
        fence: Option<&switchyard_store::Fence>,
    ) -> Result<Committing, IngestError> {
        let turn = order.lock().await;
        let id = replay.clone().unwrap_or_else(MessageId::new);
        if replay.is_none() {
            message.dedup_key = decoder.message_id(&message);
        }
        let source =
            RecordSource::Integration { integration_id: integration.clone(), message_id: Some(id.to_string()) };
        let (records, outcome, reason) = match decoder.decode(&message) {
            Err(e) => (vec![], MessageOutcome::DecodeError, Some(e.0)),
            Ok(drafts) => match self.resolve_message(org, integration, decoder, &source, drafts).await? {
                Ok(mut records) => {
                    if decoder.keyed {
                        // A record stamped with its receive time has no time of its own to key it by.
                        let own_time = |r: &Record| r.timestamp != message.received_at;
                        for r in records.iter_mut().filter(|r| r.id.is_none() && own_time(r)) {
                            r.id = Some(format!("{}/{}/{}", r.device_id, r.property, r.timestamp));
                        }
                    }
                    (self.route(org, records, &source).await?, MessageOutcome::Stored, None)
                }
                Err((outcome, reason)) => (vec![], outcome, Some(reason)),
            },
        };
        if replay.is_some() && outcome != MessageOutcome::Stored {
            return Ok(Box::pin(std::future::ready(Ok(Received { id, outcome, records: 0 }))));
        }
        let mut entry = NewMessage::new(id.clone(), integration.clone(), &message, outcome, reason);
        entry.replay = replay.is_some();
        let batch = Batch::new(org.clone(), records).with_message(entry).fenced(fence.cloned());
        let committed = self.writer.submit(batch).await?;
        drop(turn);
        let metrics = self.metrics.clone();
        Ok(Box::pin(async move {
            let written = committed.await?;
            if written.fenced {
                return Err(IngestError::Fenced);
            }
            metrics.accepted(written.stored as u64);
            if written.duplicate_message {
                return Ok(Received { id, outcome: MessageOutcome::Duplicate, records: 0 });
            }
            Ok(Received { id, outcome, records: written.stored })
        }))
    }

    /// A message's records, or why it has none. External ids no mapping
    /// resolves get a device in the integration's Place, when it has one,
    /// mapped to them; otherwise the message is unmapped.
    async fn resolve_message(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        decoder: &Decoder,
        source: &RecordSource,
        drafts: Vec<RecordDraft>,
    ) -> Result<Result<Vec<Record>, (MessageOutcome, String)>, IngestError> {
        let again = decoder.place.as_ref().map(|_| drafts.clone());
        let mut found = ingest::resolve(&self.router, org, source, drafts).await;
        if let (Err(IngestError::Unmapped { external_ids, .. }), Some(place), Some(drafts)) =
            (&found, &decoder.place, again)
        {
            match self.map_new_devices(org, integration, decoder, place, external_ids).await {
                Err(IngestError::Invalid(e)) => {
                    return Ok(Err((MessageOutcome::Unmapped, format!("no device could be created for it: {e}"))))
                }
                done => done?,
            }
            found = ingest::resolve(&self.router, org, source, drafts).await;
        }
        match found {
            Ok(records) => Ok(Ok(records)),
            Err(IngestError::Unmapped { external_ids, .. }) => {
                Ok(Err((MessageOutcome::Unmapped, format!("no resource mapping for {}", external_ids.join(", ")))))
            }
            Err(IngestError::Invalid(errors)) => Ok(Err((MessageOutcome::DecodeError, errors.to_string()))),
            Err(e) => Err(e),
        }
    }

    /// A device per external id in the Place at `place`, each mapped to its id.
    async fn map_new_devices(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        decoder: &Decoder,
        place: &str,
        external_ids: &[String],
    ) -> Result<(), IngestError> {
        let invalid = |field: &str, e: String| IngestError::Invalid(switchyard_core::ValidationErrors::one(field, e));
        let place = match switchyard_core::ResourcePath::parse(place) {
            Ok(switchyard_core::ResourcePath::Place(p)) => p,
            _ => return Err(invalid("properties.place", format!("`{place}` is not a Place"))),
        };
        let config = self.config();
        for external in external_ids {
            let device = switchyard_core::input::CreateDevice {
                name: external.clone(),
                place_id: place.to_string(),
                device_type: decoder.device_type.into(),
                external_ids: [(integration.to_string(), external.clone())].into(),
                metadata: Default::default(),
            };
            let failed = |e: ConfigError| match e {
                ConfigError::Store(e) => IngestError::Store(e),
                other => invalid("properties.place", other.to_string()),
            };
            let device = config.create_device(org, device).await.map_err(failed)?;
            let mapping = switchyard_core::input::CreateMapping {
                integration_id: integration.to_string(),
                external_id: external.clone(),
                resource_path: format!("/places/{place}/devices/{}", device.id),
                device_type: None,
            };
            config.create_mapping(org, mapping).await.map_err(failed)?;
            tracing::info!(integration = %integration, external_id = %external, device = %device.id, "device created for an unmapped external id");
        }
        Ok(())
    }

    /// The records with one delivery per integration their triggers route them to.
    async fn route(
        &self,
        org: &OrgId,
        records: Vec<Record>,
        source: &RecordSource,
    ) -> Result<Vec<NewRecord>, StoreError> {
        let table = self.router.table(org).await?;
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            let targets = if table.is_empty() {
                vec![]
            } else {
                let ancestry = self.router.ancestry(org, &record.device_id).await?;
                table.route(&record, &ancestry)
            };
            let new = NewRecord::new(record, targets.into_iter().map(NewDelivery::new).collect());
            batch.push(new.from_source(source.clone()));
        }
        Ok(batch)
    }

    /// An ingress integration's connection, and its last state changes
    /// (newest first): as this node runs it, or with several nodes as the
    /// node holding it says.
    pub async fn connection(&self, id: &IntegrationId) -> Option<(ingress::ConnectionView, Vec<ingress::StateChange>)> {
        self.ingress.status(&self.store, id).await
    }

    /// A request to an HTTP inbound integration's endpoint; returns once its
    /// message is durable (then the caller is answered 202).
    pub async fn inbound(
        &self,
        id: &IntegrationId,
        request: &switchyard_connectors::InboundRequest<'_>,
    ) -> Result<Received, ingress::InboundError> {
        self.ingress.inbound(id, request).await
    }

    /// Something that routing depends on changed (triggers, integrations, Places, devices).
    pub(crate) fn routes_changed(&self, org: &OrgId) {
        self.router.invalidate(org);
    }

    /// New deliveries are due now (a resend, say).
    pub fn wake(&self) {
        self.wake.wake();
    }

    /// The integration's circuit on this node (closed when it has not sent yet).
    pub fn circuit(&self, id: &IntegrationId) -> CircuitStatus {
        match self.circuits.get(id) {
            Some(b) => CircuitStatus {
                state: b.state(),
                since: now_ms() - b.since().elapsed().as_millis() as i64,
                consecutive_failures: b.consecutive_failures(),
            },
            None => CircuitStatus { state: CircuitState::Closed, since: 0, consecutive_failures: 0 },
        }
    }

    /// Sends a phone recipient's verification code through the integration's provider.
    pub async fn send_verification_code(&self, integration: &Integration, to: &str, code: &str) -> Result<(), String> {
        let send = switchyard_connectors::find(&integration.type_key)
            .and_then(|t| t.send_code)
            .ok_or_else(|| format!("{} integrations cannot send codes", integration.type_key))?;
        send(integration, to, code, &self.egress).await
    }

    /// The Prometheus text exposition.
    pub async fn render_metrics(&self) -> Result<String, StoreError> {
        self.metrics.render(&*self.store, &self.circuits, self.queues.queues(), self.ingress.views()).await
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// An integration's settings or recipients changed: its routes and its
    /// sender are rebuilt before the next send on this node (other nodes
    /// within seconds).
    pub(crate) fn integration_changed(&self, org: &OrgId, id: &IntegrationId) {
        self.router.invalidate(org);
        self.changes.integration(id);
        self.ingress.changed(org, id);
    }

    /// The organization's globals changed: every sender of it is rebuilt
    /// before its next send on this node (other nodes within seconds), and
    /// its ingress connections whose settings use them reconnect.
    pub(crate) fn globals_changed(&self, org: &OrgId) {
        self.changes.globals(org);
        self.ingress.globals_changed(org);
    }
}
