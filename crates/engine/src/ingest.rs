//! The one ingest path: every source (the API, ingress connectors, polled
//! sources, scripts) hands drafts and their source to [`Engine::ingest`];
//! here they are parsed (core), their devices resolved (by id, or by
//! external id through an integration's resource mappings), routed and
//! stored in a writer round. Nothing else validates records or resolves
//! devices.
//!
//! [`Engine::ingest`]: crate::Engine::ingest
use switchyard_core::{
    now_ms, DeviceId, DeviceRef, Direction, OrgId, Record, RecordDraft, RecordSource, ResourcePath, ValidationErrors,
};
use switchyard_store::StoreError;

use crate::router::Router;

/// The most records one ingest takes (all are stored or none).
pub const MAX_RECORDS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Something in the drafts is wrong; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// Every problem is an external id no mapping resolves (listed, each once); nothing was stored.
    #[error("{errors}")]
    Unmapped { external_ids: Vec<String>, errors: ValidationErrors },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The receiving node no longer holds the integration's lease: nothing was stored.
    #[error("this node no longer holds the integration's lease")]
    Fenced,
}

/// Parses the drafts and resolves their devices: the records, or every
/// problem by field (`records[i].field`).
pub(crate) async fn resolve(
    router: &Router,
    org: &OrgId,
    source: &RecordSource,
    drafts: Vec<RecordDraft>,
) -> Result<Vec<Record>, IngestError> {
    if drafts.is_empty() || drafts.len() > MAX_RECORDS {
        return Err(ValidationErrors::one("records", format!("must hold 1 to {MAX_RECORDS} records")).into());
    }
    let received = now_ms();
    let mut errors = ValidationErrors::default();
    let mut records = Vec::with_capacity(drafts.len());
    let mut resolver = Resolver { router, org, unmapped: vec![], unmapped_errors: 0 };
    for (i, draft) in drafts.into_iter().enumerate() {
        let at = |f: &str| format!("records[{i}].{f}");
        let Some(parsed) = draft.parse(&at, source, &mut errors) else { continue };
        if let Some(device) = resolver.device(&parsed.device, &at, &mut errors).await? {
            records.push(parsed.into_record(device, received));
        }
    }
    if resolver.unmapped_errors > 0 && resolver.unmapped_errors == errors.0.len() {
        return Err(IngestError::Unmapped { external_ids: resolver.unmapped, errors });
    }
    errors.into_result()?;
    Ok(records)
}

/// Resolves the devices of one ingest: integrations and external ids are
/// looked up through the router's cache, once per ingest however many
/// records repeat them.
struct Resolver<'a> {
    router: &'a Router,
    org: &'a OrgId,
    /// External ids with no mapping, in order of appearance.
    unmapped: Vec<String>,
    unmapped_errors: usize,
}

impl Resolver<'_> {
    /// The platform device a draft names, or why it names none (pushed to `errors`).
    async fn device(
        &mut self,
        device: &DeviceRef,
        at: &(dyn Fn(&str) -> String + Sync),
        errors: &mut ValidationErrors,
    ) -> Result<Option<DeviceId>, StoreError> {
        let (integration, external) = match device {
            DeviceRef::Id(id) => {
                // Every device is in a Place, so an empty ancestry means no such device.
                if self.router.ancestry(self.org, id).await?.is_empty() {
                    errors.push(at("deviceId"), format!("no device `{id}`"));
                    return Ok(None);
                }
                return Ok(Some(id.clone()));
            }
            DeviceRef::External { integration, external_id } => (integration, external_id),
        };
        match self.router.direction(self.org, integration).await? {
            Some(Direction::Ingress) => {}
            Some(_) => {
                errors.push(at("integrationId"), "must be an INGRESS integration");
                return Ok(None);
            }
            None => {
                errors.push(at("integrationId"), format!("no integration `{integration}`"));
                return Ok(None);
            }
        }
        match &*self.router.mapping(self.org, integration, external).await? {
            Some(ResourcePath::Device(_, device)) => Ok(Some(device.clone())),
            Some(_) => {
                errors.push(at("externalId"), format!("`{external}` is mapped to a Place, not a device"));
                Ok(None)
            }
            None => {
                errors.push(at("externalId"), format!("`{external}` has no resource mapping in {integration}"));
                self.unmapped_errors += 1;
                if !self.unmapped.contains(external) {
                    self.unmapped.push(external.clone());
                }
                Ok(None)
            }
        }
    }
}
