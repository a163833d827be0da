//! Ingress supervision: one task per enabled ingress integration on this
//! node. A task builds the integration's receiver and runs it, backing off
//! 1 s → 60 s with jitter between tries, forever; a change to the
//! integration (or its deletion, or a disable) stops it within a second and
//! starts what the new settings say; a shutdown lets each receiver
//! acknowledge what is stored before it leaves. Messages go through the
//! [`Sink`] to [`Engine::receive`], the ingest path.
//!
//! An endpoint type (HTTP inbound) has no link to hold: while it is enabled
//! its task keeps the endpoint open (`connected`) for [`Supervisor::inbound`],
//! which the API calls for each request, and closes it when it stops.
//!
//! With several nodes on one PostgreSQL database, each connection runs on
//! one node: the one holding its lease (`lease.rs`).
//!
//! [`Engine::receive`]: crate::Engine::receive
mod lease;
mod sink;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use switchyard_connectors::connection::Backoff;
use switchyard_connectors::decode::Decoder;
use switchyard_connectors::{Endpoint, InboundRequest, Ingress, IngressSink, LinkEvent, Refusal, Role};
use switchyard_core::{now_ms, Direction, Integration, IntegrationId, OrgId};
use switchyard_store::{Fence, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Engine, Received};
use sink::{Declined, Sink};
use status::Connection;
pub use status::{ConnectionState, ConnectionView, StateChange};

/// How long a stopping receiver may take to acknowledge what is stored.
const DRAIN: Duration = Duration::from_secs(10);
/// A link that held this long starts its next back-off from the first delay.
const HELD: Duration = Duration::from_secs(30);

struct Running {
    org: OrgId,
    /// Its settings hold templates over the globals: a change to them restarts it.
    templated: bool,
    /// The settings it runs with, by their last change (a change on another node shows here).
    updated_at: i64,
    /// The lease it runs by, with several nodes.
    fence: Option<Fence>,
    /// When this task started (ms): a globals change after it restarts a templated one.
    started_at: i64,
    stop: CancellationToken,
    done: tokio::sync::oneshot::Receiver<()>,
    /// Told when a backfill is asked of it (polled types).
    asked: Arc<tokio::sync::Notify>,
}

/// An endpoint integration's door, as requests find it.
enum Gate {
    Open {
        endpoint: Arc<dyn Endpoint>,
        sink: Arc<Sink>,
    },
    /// Disabled, or its settings cannot work: requests are refused with why.
    Closed(String),
}

/// Why a request to an endpoint was not taken.
#[derive(Debug)]
pub enum InboundError {
    /// No endpoint integration has this id (here).
    NotFound,
    /// The integration exists but takes nothing now (disabled, settings that
    /// cannot work, restarting, the store down): the caller should retry.
    Unavailable(String),
    Refused(Refusal),
    /// Over its rate limit: room again after this long.
    Throttled(Duration),
}

#[derive(Default)]
pub(crate) struct Supervisor {
    engine: OnceLock<Weak<Engine>>,
    tracker: OnceLock<TaskTracker>,
    shutdown: OnceLock<CancellationToken>,
    running: Mutex<HashMap<IntegrationId, Running>>,
    /// Every ingress integration's connection seen on this node, kept across restarts of its task.
    connections: Mutex<HashMap<IntegrationId, Arc<Connection>>>,
    /// Per integration: one change applied at a time, each reading the
    /// integration once it has its turn (so the last change read wins).
    turns: Mutex<HashMap<IntegrationId, Arc<tokio::sync::Mutex<()>>>>,
    /// The endpoint integrations' doors.
    gates: Mutex<HashMap<IntegrationId, Gate>>,
    /// This node's name in the leases, when several nodes may share the
    /// database (PostgreSQL); `None` on SQLite, where this node is the only one.
    node: OnceLock<Option<String>>,
    /// Integrations with a change being applied (so the lease loop does not pile more on).
    changing: Mutex<std::collections::HashSet<IntegrationId>>,
}

impl Supervisor {
    /// Starts every enabled ingress integration's task (with several nodes,
    /// those whose lease this node takes), and the lease loop.
    pub(crate) async fn start(
        &self,
        engine: &Arc<Engine>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<(), switchyard_store::StoreError> {
        let _ = self.engine.set(Arc::downgrade(engine));
        let _ = self.tracker.set(tracker.clone());
        let _ = self.shutdown.set(shutdown.clone());
        let node = (engine.store.backend() == switchyard_store::Backend::Postgres).then(lease::node_name);
        let _ = self.node.set(node.clone());
        for integration in enabled_ingress(&*engine.store).await? {
            let (org, id) = (integration.org_id.clone(), integration.id.clone());
            self.apply(&org, &id, Some(integration)).await;
        }
        if let Some(node) = node {
            tracker.spawn(lease::keep(Arc::downgrade(engine), node, shutdown.clone()));
        }
        Ok(())
    }

    /// Applies the integration's current settings: stops its task, and
    /// starts a new one if it is an enabled ingress integration.
    pub(crate) fn changed(&self, org: &OrgId, id: &IntegrationId) {
        let Some(engine) = self.engine.get().and_then(Weak::upgrade) else { return };
        let (org, id) = (org.clone(), id.clone());
        if let Some(tracker) = self.tracker.get() {
            self.lock_changing().insert(id.clone());
            tracker.spawn(async move {
                engine.ingress.apply(&org, &id, None).await;
                engine.ingress.lock_changing().remove(&id);
            });
        }
    }

    fn lock_changing(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<IntegrationId>> {
        self.changing.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_changing(&self, id: &IntegrationId) -> bool {
        self.lock_changing().contains(id)
    }

    /// Stops the integration's task and starts what its settings say: those
    /// given (at start), else read once it is this change's turn.
    async fn apply(&self, org: &OrgId, id: &IntegrationId, known: Option<Integration>) {
        let turn = self.turns.lock().unwrap_or_else(|e| e.into_inner()).entry(id.clone()).or_default().clone();
        let _turn = turn.lock().await;
        let found = match known {
            Some(integration) => Some(integration),
            None => {
                let Some(engine) = self.engine.get().and_then(Weak::upgrade) else { return };
                match engine.store.get_integration(org, id).await {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::error!(integration = %id, error = %e, "reading a changed integration failed");
                        return;
                    }
                }
            }
        };
        let previous = self.lock_running().remove(id);
        if let Some(previous) = previous {
            previous.stop.cancel();
            let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), previous.done).await;
        }
        let Some(engine) = self.engine.get().and_then(Weak::upgrade) else { return };
        let Some(integration) = found.filter(|i| i.direction == Direction::Ingress) else {
            self.lock_connections().remove(id);
            self.lock_gates().remove(id);
            self.let_go(&engine, id).await;
            return;
        };
        if !integration.enabled {
            self.connection(id).set(ConnectionState::Disabled, None);
            if matches!(role(&integration), Some(Role::Endpoint(_))) {
                self.lock_gates().insert(id.clone(), Gate::Closed("the integration is disabled".into()));
            }
            self.let_go(&engine, id).await;
            return;
        }
        let (Some(tracker), Some(shutdown)) = (self.tracker.get(), self.shutdown.get()) else { return };
        if shutdown.is_cancelled() {
            return;
        }
        // A connection runs on the node holding its lease (an endpoint on every node).
        let leased = matches!(role(&integration), Some(Role::Ingress(_)));
        let fence = match self.node() {
            Some(node) if leased => {
                let name = lease::name(id);
                let now = now_ms();
                match engine.store.take_leases(std::slice::from_ref(&name), node, now, now + lease::TTL_MS).await {
                    Ok(held) if !held.is_empty() => Some(Fence { name, holder: node.to_owned(), epoch: held[0].1 }),
                    Ok(_) => {
                        // Another node holds it; the lease loop takes it when that node lets go.
                        self.lock_connections().remove(id);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(integration = %id, error = %e, "taking an ingress lease failed; retrying");
                        self.lock_connections().remove(id);
                        return;
                    }
                }
            }
            _ => None,
        };
        let connection = self.connection(id);
        let stop = shutdown.child_token();
        let (finished, done) = tokio::sync::oneshot::channel();
        let templated = integration.properties.values().any(|v| v.to_string().contains("{{"))
            || integration.secrets.values().any(|s| s.expose().contains("{{"));
        let updated_at = integration.updated_at;
        let asked = Arc::new(tokio::sync::Notify::new());
        let task = supervise(engine, org.clone(), integration, connection, stop.clone(), fence.clone(), asked.clone());
        tracker.spawn(async move {
            task.await;
            let _ = finished.send(());
        });
        let running =
            Running { org: org.clone(), templated, updated_at, fence, started_at: now_ms(), stop, done, asked };
        self.lock_running().insert(id.clone(), running);
    }

    /// This node's name in the leases, with several nodes.
    fn node(&self) -> Option<&str> {
        self.node.get().and_then(Option::as_deref)
    }

    /// The integration no longer runs here: with several nodes, its lease is
    /// let go, so another node may take it at once.
    async fn let_go(&self, engine: &Engine, id: &IntegrationId) {
        if let Some(node) = self.node() {
            if let Err(e) = engine.store.drop_leases(&[lease::name(id)], node).await {
                tracing::warn!(integration = %id, error = %e, "letting go of an ingress lease failed; it runs out");
            }
        }
    }

    /// The organization's globals changed: its running integrations whose
    /// settings are templates start again with them rendered anew.
    pub(crate) fn globals_changed(&self, org: &OrgId) {
        self.globals_changed_at(org, i64::MAX)
    }

    /// The same, for those started before `at` (ms): a change another node
    /// made, which this node's own restarts may already have read.
    fn globals_changed_at(&self, org: &OrgId, at: i64) {
        let ids: Vec<IntegrationId> = self
            .lock_running()
            .iter()
            .filter(|(_, r)| r.org == *org && r.templated && r.started_at < at)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.changed(org, &id);
        }
    }

    /// A backfill was asked of the integration: its receiver, if it runs
    /// here, takes it up (with several nodes, the holder finds it itself).
    pub(crate) fn backfill_asked(&self, id: &IntegrationId) {
        if let Some(running) = self.lock_running().get(id) {
            running.asked.notify_one();
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<IntegrationId, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_gates(&self) -> std::sync::MutexGuard<'_, HashMap<IntegrationId, Gate>> {
        self.gates.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request to an endpoint integration: accepted (who sent it, its
    /// size and type), then stored if its rate limit has room; returns once
    /// the message is durable.
    pub(crate) async fn inbound(
        &self,
        id: &IntegrationId,
        request: &InboundRequest<'_>,
    ) -> Result<Received, InboundError> {
        let (endpoint, sink) = match self.lock_gates().get(id) {
            None => return Err(InboundError::NotFound),
            Some(Gate::Closed(why)) => return Err(InboundError::Unavailable(why.clone())),
            Some(Gate::Open { endpoint, sink }) => (endpoint.clone(), sink.clone()),
        };
        let message = endpoint.accept(request).map_err(InboundError::Refused)?;
        sink.offer(message).await.map_err(|e| match e {
            Declined::Throttled(wait) => InboundError::Throttled(wait),
            Declined::Unavailable(why) => InboundError::Unavailable(why),
        })
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, HashMap<IntegrationId, Arc<Connection>>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connection(&self, id: &IntegrationId) -> Arc<Connection> {
        self.lock_connections()
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Connection::new(ConnectionState::Connecting)))
            .clone()
    }

    /// Every connection this node holds, for the metrics.
    pub(crate) fn views(&self) -> Vec<(IntegrationId, ConnectionView)> {
        let connections: Vec<_> = self.lock_connections().iter().map(|(id, c)| (id.clone(), c.clone())).collect();
        connections.into_iter().map(|(id, c)| (id, c.view())).collect()
    }

    /// The connection of an ingress integration as this node runs it (none
    /// when it never ran here).
    fn view(&self, id: &IntegrationId) -> Option<(ConnectionView, Vec<StateChange>)> {
        let c = self.lock_connections().get(id).cloned()?;
        let mut view = c.view();
        view.node = self.node().map(str::to_owned);
        Some((view, c.history()))
    }

    /// The connection as this node runs it, else (several nodes) as the
    /// node holding its lease last said.
    pub(crate) async fn status(
        &self,
        store: &Arc<dyn Store>,
        id: &IntegrationId,
    ) -> Option<(ConnectionView, Vec<StateChange>)> {
        if let Some(here) = self.view(id) {
            return Some(here);
        }
        self.node()?;
        let held = store.get_lease(&lease::name(id)).await.ok()??;
        if held.expires_at <= now_ms() {
            return None;
        }
        let lease::Published { view, history } = serde_json::from_str(held.state.as_deref()?).ok()?;
        Some((view, history))
    }
}

/// What an ingress type builds, by its role.
fn role(integration: &Integration) -> Option<Role> {
    switchyard_connectors::find(&integration.type_key).and_then(|t| t.direction(Direction::Ingress)).map(|d| d.role)
}

enum Built {
    Receiver(Result<Box<dyn Ingress>, switchyard_connectors::BuildError>),
    Endpoint(Result<Box<dyn Endpoint>, switchyard_connectors::BuildError>),
}

/// An endpoint's stand-in for a receiver: open (`connected`) until it must stop.
struct Listening;

#[async_trait::async_trait]
impl Ingress for Listening {
    async fn run(&mut self, sink: &dyn IngressSink) -> Result<(), String> {
        sink.link(LinkEvent::Connected);
        sink.stopping().await;
        Ok(())
    }
}

/// One integration's task: build, run, back off, until stopped.
async fn supervise(
    engine: Arc<Engine>,
    org: OrgId,
    integration: Integration,
    connection: Arc<Connection>,
    stop: CancellationToken,
    fence: Option<Fence>,
    asked: Arc<tokio::sync::Notify>,
) {
    let id = integration.id.clone();
    let endpoint = matches!(role(&integration), Some(Role::Endpoint(_)));
    let failed = |e: String| {
        tracing::warn!(integration = %id, error = %e, "ingress settings cannot work");
        if endpoint {
            let why = format!("the integration's settings cannot work: {e}");
            engine.ingress.lock_gates().insert(id.clone(), Gate::Closed(why));
        }
        connection.set(ConnectionState::Failed, Some(e));
    };
    let built = async {
        let globals = engine.store.get_globals(&org).await.map_err(|e| e.to_string())?;
        let decoder = Decoder::of(&integration).map_err(|e| e.to_string())?;
        let built = match role(&integration) {
            Some(Role::Ingress(build)) => Built::Receiver(build(&integration, &globals, &engine.egress)),
            Some(Role::Endpoint(build)) => Built::Endpoint(build(&integration, &globals)),
            _ => return Err(format!("{} cannot receive yet", integration.type_key)),
        };
        Ok::<_, String>((decoder, built))
    };
    let (decoder, built) = match built.await {
        Ok(built) => built,
        Err(e) => {
            failed(e);
            return;
        }
    };
    let interval = decoder.expected_interval;
    let sink = Arc::new(Sink::new(
        engine.clone(),
        org,
        id.clone(),
        decoder,
        connection.clone(),
        stop.clone(),
        fence.clone(),
        asked,
    ));
    let mut receiver: Box<dyn Ingress> = match built {
        Built::Receiver(Ok(receiver)) => receiver,
        Built::Endpoint(Ok(endpoint)) => {
            let gate = Gate::Open { endpoint: endpoint.into(), sink: sink.clone() };
            engine.ingress.lock_gates().insert(id.clone(), gate);
            Box::new(Listening)
        }
        Built::Receiver(Err(e)) | Built::Endpoint(Err(e)) => {
            failed(e.to_string());
            return;
        }
    };
    let mut backoff = Backoff::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        if connection.state() != ConnectionState::Reconnecting {
            connection.set(ConnectionState::Connecting, None);
        }
        let started = Instant::now();
        let run = receiver.run(&*sink);
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                _ = stop.cancelled() => {
                    // The receiver sees the stop too: it acknowledges what is stored, then returns.
                    break tokio::time::timeout(DRAIN, &mut run).await.unwrap_or(Ok(()));
                }
                _ = tick.tick() => connection.check_silence(interval, now_ms()),
            }
        };
        if stop.is_cancelled() {
            break;
        }
        let error = result.err().unwrap_or_else(|| "the source ended the connection".into());
        tracing::warn!(integration = %id, error = %error, "ingress link lost; reconnecting");
        connection.set(ConnectionState::Reconnecting, Some(error));
        if started.elapsed() >= HELD {
            backoff.reset();
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = stop.cancelled() => break,
        }
    }
    if endpoint {
        // Until the change that stopped it says otherwise, callers are told to come back.
        engine.ingress.lock_gates().insert(id.clone(), Gate::Closed("the integration is restarting".into()));
    }
    let shutting_down = engine.ingress.shutdown.get().is_some_and(CancellationToken::is_cancelled);
    if let Some(fence) = fence.filter(|_| shutting_down) {
        // This node stops: another may take the connection over at once.
        let _ = engine.store.drop_leases(&[fence.name], &fence.holder).await;
    }
}

/// Every enabled ingress integration of every organization.
async fn enabled_ingress(store: &dyn Store) -> Result<Vec<Integration>, switchyard_store::StoreError> {
    let filter = switchyard_store::IntegrationFilter {
        direction: Some(Direction::Ingress),
        enabled: Some(true),
        ..Default::default()
    };
    let mut all = Vec::new();
    for org in store.list_orgs().await? {
        let mut page = switchyard_store::PageRequest { limit: 200, after: None };
        loop {
            let found = store.list_integrations(&org.id, &filter, &page).await?;
            all.extend(found.items);
            match found.next_cursor {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
    }
    Ok(all)
}
