//! The one way to build an integration's sender, and a worker's copy of it.
use std::sync::Arc;
use std::time::Instant;

use switchyard_connectors::{Egress, EgressContext};
use switchyard_core::{Globals, Integration, IntegrationId, OrgId};
use switchyard_store::{Store, StoreError};

/// A worker's sender and what it was built from: kept (with its connection,
/// for connection-based types) while neither the integration nor the globals change.
pub(super) struct Loaded {
    pub(super) at: Instant,
    /// The change counter when loaded.
    pub(super) version: u64,
    updated_at: i64,
    globals: Globals,
    pub(super) egress: Arc<dyn Egress>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SenderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The integration's settings cannot make a sender (the reason says why).
    #[error("{0}")]
    Build(String),
}

/// The one way to build an integration's sender: its type's builder, given
/// the organization's globals and, for notification types, the active
/// recipients. Workers and test sends both build through it.
pub(crate) async fn build(
    store: &dyn Store,
    ctx: &EgressContext,
    integration: &Integration,
    globals: &Globals,
) -> Result<Box<dyn Egress>, SenderError> {
    let kind = switchyard_connectors::find(&integration.type_key)
        .ok_or_else(|| SenderError::Build(format!("{} cannot send", integration.type_key)))?;
    let recipients = match kind.recipients {
        Some(_) => store.active_recipients(&integration.org_id, &integration.id).await?,
        None => vec![],
    };
    kind.build_egress(integration, globals, &recipients, ctx).map_err(|e| SenderError::Build(e.to_string()))
}

/// The integration's sender for a worker: `current` again while it was
/// built from the same settings, globals and change count (`version`), else
/// a new one; `None` when the integration is gone, disabled or cannot send.
pub(super) async fn load_sender(
    store: &Arc<dyn Store>,
    ctx: &EgressContext,
    org: &OrgId,
    id: &IntegrationId,
    current: Option<Loaded>,
    version: u64,
) -> Option<Loaded> {
    let loaded = async {
        let Some(integration) = store.get_integration(org, id).await?.filter(|i| i.enabled) else {
            return Ok(None);
        };
        let globals = store.get_globals(org).await?;
        let same = |c: &Loaded| c.version == version && c.updated_at == integration.updated_at && c.globals == globals;
        if let Some(mut current) = current.filter(same) {
            current.at = Instant::now();
            return Ok(Some(current));
        }
        let egress = build(&**store, ctx, &integration, &globals).await?;
        let (at, updated_at) = (Instant::now(), integration.updated_at);
        Ok(Some(Loaded { at, version, updated_at, globals, egress: Arc::from(egress) }))
    };
    match loaded.await {
        Ok(loaded) => loaded,
        Err(SenderError::Store(e)) => {
            tracing::error!(integration = %id, error = %e, "loading the integration's sender failed");
            None
        }
        Err(SenderError::Build(e)) => {
            tracing::warn!(integration = %id, error = %e, "the integration cannot send");
            None
        }
    }
}

pub(super) async fn deactivate(store: &dyn Store, org: &OrgId, id: &IntegrationId) {
    match store.set_integration_enabled(org, id, false).await {
        Ok(_) => tracing::warn!(integration = %id, "410 Gone: the integration was disabled"),
        Err(e) => tracing::error!(integration = %id, error = %e, "disabling the integration failed"),
    }
}
