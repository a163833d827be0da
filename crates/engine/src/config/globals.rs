//! The organization's globals, which templated properties render with:
//! every sender of the organization is rebuilt before its next send, and
//! every ingress connection whose settings are templates reconnects.
use std::collections::BTreeMap;

use switchyard_core::{validate_metadata, Globals, Metadata, OrgId, Secret, ValidationErrors};

use super::{ConfigError, Configuration};

/// A secret global's longest value.
const SECRET_MAX: usize = 16 * 1024;

impl Configuration<'_> {
    /// Replaces the plain globals; `secrets` sets (a value) or removes
    /// (`None`) secret ones, and keeps those it does not name. A name is
    /// either plain or secret.
    pub async fn set_globals(
        &self,
        org: &OrgId,
        values: &Metadata,
        secrets: &BTreeMap<String, Option<String>>,
    ) -> Result<Globals, ConfigError> {
        let mut errors = ValidationErrors::default();
        validate_metadata("globals", values, &mut errors);
        let mut globals = self.engine.store.get_globals(org).await?;
        for (name, value) in secrets {
            let field = format!("secrets.{name}");
            if name.is_empty() || name.len() > switchyard_core::METADATA_MAX_KEY {
                errors.push(&field, format!("names are 1 to {} characters", switchyard_core::METADATA_MAX_KEY));
            } else if value.is_some() && values.contains_key(name) {
                errors.push(&field, "is also a plain global: a name is plain or secret, not both");
            }
            match value {
                Some(v) if v.is_empty() || v.len() > SECRET_MAX => {
                    errors.push(&field, format!("must be 1 to {SECRET_MAX} bytes (null removes it)"))
                }
                Some(v) => {
                    globals.secrets.insert(name.clone(), Secret::new(v.clone()));
                }
                None => {
                    globals.secrets.remove(name);
                }
            }
        }
        if globals.secrets.len() > switchyard_core::METADATA_MAX_ENTRIES {
            errors.push("secrets", format!("at most {} secret globals", switchyard_core::METADATA_MAX_ENTRIES));
        }
        for name in values.keys().filter(|k| globals.secrets.contains_key(*k) && !secrets.contains_key(*k)) {
            errors.push(format!("globals.{name}"), "is a secret global: remove it from secrets first");
        }
        errors.into_result()?;
        globals.values = values.clone();
        self.engine.store.set_globals(org, &globals).await?;
        self.engine.globals_changed(org);
        Ok(globals)
    }
}
