//! Resource mappings: an external id, as an integration's far system names a
//! thing, linked to a Place or a device. Ingest reads them per batch, so
//! nothing is cached to invalidate.
use switchyard_core::input::CreateMapping;
use switchyard_core::{
    now_ms, IntegrationId, MappingId, OrgId, ResourceMapping, ResourcePath, ResourceType, ValidationErrors,
};

use super::{deleted, ConfigError, Configuration};

const EXTERNAL_ID_MAX: usize = 256;

impl Configuration<'_> {
    /// 409 when the integration already maps the external id.
    pub async fn create_mapping(&self, org: &OrgId, input: CreateMapping) -> Result<ResourceMapping, ConfigError> {
        let mut errors = ValidationErrors::default();
        let external_id = input.external_id.trim();
        if external_id.is_empty() || external_id.len() > EXTERNAL_ID_MAX {
            errors.push("externalId", format!("must be 1 to {EXTERNAL_ID_MAX} bytes (as a record names it)"));
        }
        let path = match ResourcePath::parse(&input.resource_path) {
            Ok(ResourcePath::Root) => {
                errors.push("resourcePath", "must name a Place or a device");
                None
            }
            Ok(p) => Some(p),
            Err(e) => {
                errors.push("resourcePath", e);
                None
            }
        };
        if input.device_type.is_some() && !matches!(path, Some(ResourcePath::Device(..)) | None) {
            errors.push("deviceType", "applies only to a device path");
        }
        errors.into_result()?;
        let path = path.expect("validated above");
        let integration = IntegrationId::parse(&input.integration_id)
            .ok()
            .ok_or_else(|| ConfigError::not_found("integration", &input.integration_id))?;
        let integration = self
            .engine
            .store
            .get_integration(org, &integration)
            .await?
            .ok_or_else(|| ConfigError::not_found("integration", &integration))?;
        let resource = self.engine.store.resolve(org, &path).await?.ok_or_else(|| {
            ConfigError::Invalid(ValidationErrors::one("resourcePath", format!("no resource at `{path}`")))
        })?;
        if let (Some(want), Some(got)) = (&input.device_type, &resource.device_type) {
            if want != got {
                let e = ValidationErrors::one("deviceType", format!("the device is of type `{got}`, not `{want}`"));
                return Err(e.into());
            }
        }
        let mapping = ResourceMapping {
            id: MappingId::new(),
            integration_id: integration.id,
            external_id: external_id.to_owned(),
            resource_type: path.resource_type().unwrap_or(ResourceType::Place),
            resource_path: path,
            device_type: input.device_type,
            created_at: now_ms(),
        };
        self.engine.store.create_mapping(org, &mapping).await?;
        self.engine.routes_changed(org);
        Ok(mapping)
    }

    pub async fn delete_mapping(&self, org: &OrgId, id: &MappingId) -> Result<(), ConfigError> {
        let found = self.engine.store.delete_mapping(org, id).await?;
        self.engine.routes_changed(org);
        deleted(found, "resource mapping", id)
    }
}
