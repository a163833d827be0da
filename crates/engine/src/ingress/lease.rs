//! Several nodes on one PostgreSQL database: each ingress connection runs
//! on the one node holding its lease (`ingress:<id>`, [`TTL_MS`] long). Once
//! a second this loop renews the leases of what runs here (a lease lost —
//! taken over after this node stalled — stops its connection, and the
//! round's fence had already kept it from committing), publishes each
//! connection's status into its lease for the other nodes to show, and
//! reconciles with the store: changes made on other nodes are applied, and
//! connections no node holds (their node was killed, or let go) are taken.
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_connectors::Role;
use switchyard_core::{now_ms, IntegrationId, OrgId};
use switchyard_store::StoreError;
use tokio_util::sync::CancellationToken;

use super::{enabled_ingress, role, ConnectionView, StateChange};
use crate::Engine;

/// How long a lease lasts unrenewed: a killed node's connections are taken
/// over within this and a tick, then they connect.
pub(super) const TTL_MS: i64 = 10_000;
const TICK: Duration = Duration::from_secs(1);

pub(super) fn name(id: &IntegrationId) -> String {
    format!("ingress:{id}")
}

/// This node's name in the leases: the host, the process and a random part
/// (a restarted process is another holder).
pub(super) fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let host = if host.is_empty() { "node" } else { host };
    format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// A connection's status as its holder publishes it in the lease.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Published {
    pub view: ConnectionView,
    pub history: Vec<StateChange>,
}

pub(super) async fn keep(engine: Weak<Engine>, node: String, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut published: HashMap<IntegrationId, String> = HashMap::new();
    let mut globals: HashMap<OrgId, i64> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(engine) = engine.upgrade() else { return };
        if let Err(e) = round(&engine, &node, &mut published).await {
            tracing::warn!(error = %e, "keeping the ingress leases failed; retrying");
        }
        if let Err(e) = globals_round(&engine, &mut globals).await {
            tracing::warn!(error = %e, "reading the globals' versions failed; retrying");
        }
    }
}

/// Globals changed on another node: the templated connections that started
/// before the change reconnect here too.
async fn globals_round(engine: &Arc<Engine>, seen: &mut HashMap<OrgId, i64>) -> Result<(), StoreError> {
    for (org, at) in engine.store.globals_versions().await? {
        match seen.insert(org.clone(), at) {
            Some(before) if before != at => engine.ingress.globals_changed_at(&org, at),
            _ => {}
        }
    }
    Ok(())
}

async fn round(
    engine: &Arc<Engine>,
    node: &str,
    published: &mut HashMap<IntegrationId, String>,
) -> Result<(), StoreError> {
    let supervisor = &engine.ingress;
    let now = now_ms();
    let leased: Vec<_> = supervisor
        .lock_running()
        .iter()
        .filter_map(|(id, r)| r.fence.clone().map(|f| (id.clone(), r.org.clone(), f)))
        .collect();
    let names: Vec<String> = leased.iter().map(|(_, _, f)| f.name.clone()).collect();
    let held: HashMap<String, i64> =
        engine.store.take_leases(&names, node, now, now + TTL_MS).await?.into_iter().collect();
    for (id, org, fence) in &leased {
        if held.get(&fence.name) != Some(&fence.epoch) {
            if !supervisor.is_changing(id) {
                tracing::warn!(integration = %id, "another node took this connection's lease over; stopping it here");
                supervisor.changed(org, id);
            }
            continue;
        }
        if let Some((view, history)) = supervisor.view(id) {
            let text = serde_json::to_string(&Published { view, history }).unwrap_or_default();
            if published.get(id) != Some(&text) {
                engine.store.set_lease_state(&fence.name, node, &text).await?;
                published.insert(id.clone(), text);
            }
        }
    }
    published.retain(|id, _| leased.iter().any(|(l, ..)| l == id));

    // What the store says should run, against what runs here.
    let enabled = enabled_ingress(&*engine.store).await?;
    let here: HashMap<IntegrationId, i64> =
        supervisor.lock_running().iter().map(|(id, r)| (id.clone(), r.updated_at)).collect();
    let mut unheld = Vec::new();
    for integration in &enabled {
        if supervisor.is_changing(&integration.id) {
            continue;
        }
        match here.get(&integration.id) {
            Some(at) if *at == integration.updated_at => {}
            // Changed on another node.
            Some(_) => supervisor.changed(&integration.org_id, &integration.id),
            None if matches!(role(integration), Some(Role::Ingress(_))) => unheld.push(integration),
            // An endpoint runs on every node.
            None => supervisor.changed(&integration.org_id, &integration.id),
        }
    }
    for (id, r) in supervisor.lock_running().iter() {
        // Disabled or deleted on another node.
        if !enabled.iter().any(|i| i.id == *id) && !supervisor.is_changing(id) {
            supervisor.changed(&r.org, id);
        }
    }
    let names: Vec<String> = unheld.iter().map(|i| name(&i.id)).collect();
    let taken: Vec<String> =
        engine.store.take_leases(&names, node, now, now + TTL_MS).await?.into_iter().map(|(n, _)| n).collect();
    for integration in unheld.into_iter().filter(|i| taken.contains(&name(&i.id))) {
        tracing::info!(integration = %integration.id, "took over an ingress connection no node held");
        supervisor.changed(&integration.org_id, &integration.id);
    }
    Ok(())
}
