//! The organization's globals, which templated properties render with:
//! every sender of the organization is rebuilt before its next send.
use switchyard_core::{validate_metadata, Metadata, OrgId, ValidationErrors};

use super::{ConfigError, Configuration};

impl Configuration<'_> {
    pub async fn set_globals(&self, org: &OrgId, globals: &Metadata) -> Result<(), ConfigError> {
        let mut errors = ValidationErrors::default();
        validate_metadata("globals", globals, &mut errors);
        errors.into_result()?;
        self.engine.store.set_globals(org, globals).await?;
        self.engine.globals_changed(org);
        Ok(())
    }
}
