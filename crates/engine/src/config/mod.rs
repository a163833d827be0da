//! The configuration service: the one write path for what operators
//! configure (Places, devices, resource mappings, globals, triggers,
//! integrations, recipients). It validates (through the connectors' hooks
//! where a type has them), writes through the store, and invalidates what
//! the data path caches itself, so the API, the console, configuration as
//! code and scripts change configuration the same way and none of them can
//! forget an invalidation.
use switchyard_core::spec::ResourceRef;
use switchyard_core::{Integration, IntegrationId, OrgId, ResourcePath, ValidationErrors};
use switchyard_store::StoreError;

pub use integrations::Generated;

use crate::Engine;

mod globals;
mod integrations;
mod mappings;
mod places;
mod recipients;
mod triggers;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// What the change names does not exist in the organization.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// It would break a rule of the data (a duplicate, or a row still in use).
    #[error("{0}")]
    Conflict(String),
    /// A far side the change needed (an SMS provider sending a code) failed.
    #[error("{0}")]
    Upstream(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ConfigError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) | StoreError::InUse(m) => Self::Conflict(m),
            StoreError::Invalid { field, message } => Self::Invalid(ValidationErrors::one(field, message)),
            other => Self::Store(other),
        }
    }
}

impl ConfigError {
    pub(crate) fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("no {what} `{id}`"))
    }
}

/// The configuration service, borrowed from the engine.
pub struct Configuration<'e> {
    engine: &'e Engine,
}

impl Engine {
    pub fn config(&self) -> Configuration<'_> {
        Configuration { engine: self }
    }
}

impl Configuration<'_> {
    /// The organization's integration, or 404.
    pub(crate) async fn integration(&self, org: &OrgId, id: &IntegrationId) -> Result<Integration, ConfigError> {
        self.engine.store.get_integration(org, id).await?.ok_or_else(|| ConfigError::not_found("integration", id))
    }

    /// Every resource path given (by field), and every resource a property
    /// names, exists in the organization; else a 422 naming each field.
    pub(crate) async fn check_resources(
        &self,
        org: &OrgId,
        paths: &[(String, ResourcePath)],
        refs: &[ResourceRef],
    ) -> Result<(), ConfigError> {
        let mut errors = ValidationErrors::default();
        let all = paths.iter().map(|(f, p)| (f, p)).chain(refs.iter().map(|r| (&r.field, &r.path)));
        for (field, path) in all {
            if self.engine.store.resolve(org, path).await?.is_none() {
                errors.push(field.clone(), format!("no resource at `{path}`"));
            }
        }
        Ok(errors.into_result()?)
    }
}

/// 404 for a delete that found nothing.
fn deleted(found: bool, what: &str, id: impl std::fmt::Display) -> Result<(), ConfigError> {
    if found {
        Ok(())
    } else {
        Err(ConfigError::not_found(what, id))
    }
}
