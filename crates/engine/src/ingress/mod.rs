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
//! [`Engine::receive`]: crate::Engine::receive
mod sink;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use switchyard_connectors::connection::Backoff;
use switchyard_connectors::decode::Decoder;
use switchyard_connectors::{Endpoint, InboundRequest, Ingress, IngressSink, LinkEvent, Refusal, Role};
use switchyard_core::{now_ms, Direction, Integration, IntegrationId, OrgId};
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
    stop: CancellationToken,
    done: tokio::sync::oneshot::Receiver<()>,
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
}

impl Supervisor {
    /// Starts every enabled ingress integration's task.
    pub(crate) async fn start(
        &self,
        engine: &Arc<Engine>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<(), switchyard_store::StoreError> {
        let _ = self.engine.set(Arc::downgrade(engine));
        let _ = self.tracker.set(tracker.clone());
        let _ = self.shutdown.set(shutdown.clone());
        let filter = switchyard_store::IntegrationFilter {
            direction: Some(Direction::Ingress),
            enabled: Some(true),
            ..Default::default()
        };
        for org in engine.store.list_orgs().await? {
            let mut page = switchyard_store::PageRequest { limit: 200, after: None };
            loop {
                let found = engine.store.list_integrations(&org.id, &filter, &page).await?;
                for integration in found.items {
                    let id = integration.id.clone();
                    self.apply(&org.id, &id, Some(integration)).await;
                }
                match found.next_cursor {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Applies the integration's current settings: stops its task, and
    /// starts a new one if it is an enabled ingress integration.
    pub(crate) fn changed(&self, org: &OrgId, id: &IntegrationId) {
        let Some(engine) = self.engine.get().and_then(Weak::upgrade) else { return };
        let (org, id) = (org.clone(), id.clone());
        if let Some(tracker) = self.tracker.get() {
            tracker.spawn(async move { engine.ingress.apply(&org, &id, None).await });
        }
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
        let Some(integration) = found.filter(|i| i.direction == Direction::Ingress) else {
            self.lock_connections().remove(id);
            self.lock_gates().remove(id);
            return;
        };
        let connection = self.connection(id);
        if !integration.enabled {
            connection.set(ConnectionState::Disabled, None);
            if matches!(role(&integration), Some(Role::Endpoint(_))) {
                self.lock_gates().insert(id.clone(), Gate::Closed("the integration is disabled".into()));
            }
            return;
        }
        let (Some(engine), Some(tracker), Some(shutdown)) =
            (self.engine.get().and_then(Weak::upgrade), self.tracker.get(), self.shutdown.get())
        else {
            return;
        };
        if shutdown.is_cancelled() {
            return;
        }
        let stop = shutdown.child_token();
        let (finished, done) = tokio::sync::oneshot::channel();
        let templated = integration.properties.values().any(|v| v.to_string().contains("{{"))
            || integration.secrets.values().any(|s| s.expose().contains("{{"));
        let task = supervise(engine, org.clone(), integration, connection, stop.clone());
        tracker.spawn(async move {
            task.await;
            let _ = finished.send(());
        });
        self.lock_running().insert(id.clone(), Running { org: org.clone(), templated, stop, done });
    }

    /// The organization's globals changed: its running integrations whose
    /// settings are templates start again with them rendered anew.
    pub(crate) fn globals_changed(&self, org: &OrgId) {
        let ids: Vec<IntegrationId> = self
            .lock_running()
            .iter()
            .filter(|(_, r)| r.org == *org && r.templated)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.changed(org, &id);
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

    /// The connection of an ingress integration as this node sees it (none
    /// when it never ran here).
    pub(crate) fn view(&self, id: &IntegrationId) -> Option<(ConnectionView, Vec<StateChange>)> {
        let c = self.lock_connections().get(id).cloned()?;
        Some((c.view(), c.history()))
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
    let sink = Arc::new(Sink::new(engine.clone(), org, id.clone(), decoder, connection.clone(), stop.clone()));
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
        engine.ingress.lock_gates().insert(id, Gate::Closed("the integration is restarting".into()));
    }
}
