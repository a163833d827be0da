//! Integrations: created against their type's property specs and the
//! connector's own checks (through the registry's hooks), updated
//! partially (secrets kept unless cleared with null), deleted with their
//! mappings. Routes and the integration's sender are invalidated here.
use switchyard_connectors::{Catalog, ConnectorType, DirectionSupport};
use switchyard_core::input::{CreateIntegration, UpdateIntegration};
use switchyard_core::spec::{self, Resolved};
use switchyard_core::{
    now_ms, validate_metadata, validate_name, Direction, Integration, IntegrationId, Org, ResourcePath,
    ValidationErrors,
};

use super::{deleted, ConfigError, Configuration};

/// Secrets Switchyard generated at create (a webhook's signing secret), to show once.
pub type Generated = Vec<(&'static str, String)>;

/// Which direction a new integration takes: the one the request names, or
/// else the only one its type supports, or the only one available.
fn pick_direction<'t>(
    t: &'t ConnectorType,
    requested: Option<Direction>,
    errors: &mut ValidationErrors,
) -> Option<&'t DirectionSupport> {
    let support = match (requested, t.directions.as_slice()) {
        (Some(d), _) => t.direction(d).or_else(|| {
            let supported: Vec<&str> = t.directions.iter().map(|s| s.direction().as_str()).collect();
            errors.push("direction", format!("{} supports only {}", t.key, supported.join(" and ")));
            None
        })?,
        (None, [only]) => only,
        (None, both) if both.iter().filter(|d| d.available()).count() == 1 => {
            both.iter().find(|d| d.available()).expect("one is available")
        }
        (None, _) => {
            errors.push("direction", format!("is required: {} supports both INGRESS and EGRESS", t.key));
            return None;
        }
    };
    if !support.available() {
        errors.push("type", format!("{} ({}) is not available yet (coming soon)", t.key, support.direction().as_str()));
        return None;
    }
    Some(support)
}

fn find_type<'a>(types: Catalog<'a>, key: &str, errors: &mut ValidationErrors) -> Option<&'a ConnectorType> {
    let found = types.find(key);
    if found.is_none() {
        errors.push("type", format!("unknown integration type `{key}`; see GET /v2/integrations/catalog"));
    }
    found
}

impl Configuration<'_> {
    /// Secret properties are stored encrypted; the generated ones come back once.
    pub async fn create_integration(
        &self,
        org: &Org,
        input: CreateIntegration,
    ) -> Result<(Integration, Generated), ConfigError> {
        let mut errors = ValidationErrors::default();
        validate_name("name", &input.name, &mut errors);
        validate_metadata("metadata", &input.metadata, &mut errors);
        let support = find_type(Catalog::registry(org), &input.type_key, &mut errors)
            .and_then(|t| Some((t, pick_direction(t, input.direction, &mut errors)?)));
        let mut resolved = match support {
            Some((_, d)) => {
                match spec::validate_create(&d.properties, &input.properties).and_then(|r| (d.check)(&r).map(|()| r)) {
                    Ok(r) => r,
                    Err(e) => {
                        errors.0.extend(e.0);
                        Resolved::default()
                    }
                }
            }
            None => Resolved::default(),
        };
        let paths = ResourcePath::parse_list("resourcePaths", &input.resource_paths, "", &mut errors);
        errors.into_result()?;
        let (t, d) = support.expect("validated above");
        self.check_resources(&org.id, &paths, &resolved.resources).await?;
        let generated = (d.prepare)(&mut resolved);
        let now = now_ms();
        let integration = Integration {
            id: IntegrationId::new(),
            org_id: org.id.clone(),
            name: input.name.trim().to_owned(),
            type_key: t.key.to_string(),
            direction: d.direction(),
            enabled: input.enabled,
            properties: resolved.properties,
            secrets: resolved.secrets,
            metadata: input.metadata,
            resource_paths: paths.into_iter().map(|(_, p)| p).collect(),
            created_at: now,
            updated_at: now,
        };
        self.engine.store.create_integration(&integration).await?;
        self.engine.integration_changed(&org.id, &integration.id);
        tracing::info!(integration = %integration.id, r#type = %t.key, "integration created");
        Ok((integration, generated))
    }

    /// Name, enabled, properties, metadata and resource paths; the type and
    /// the direction are fixed.
    pub async fn update_integration(
        &self,
        org: &Org,
        id: &IntegrationId,
        input: UpdateIntegration,
    ) -> Result<Integration, ConfigError> {
        let mut current = self.integration(&org.id, id).await?;
        let mut errors = ValidationErrors::default();
        if input.type_key.as_ref().is_some_and(|t| *t != current.type_key) {
            errors.push("type", "cannot be changed; create a new integration instead");
        }
        if input.direction.is_some_and(|d| d != current.direction) {
            errors.push("direction", "cannot be changed; create a new integration instead");
        }
        if let Some(name) = &input.name {
            validate_name("name", name, &mut errors);
        }
        if let Some(metadata) = &input.metadata {
            validate_metadata("metadata", metadata, &mut errors);
        }
        let support = switchyard_connectors::find(&current.type_key).and_then(|t| t.direction(current.direction));
        let specs = support.map(|d| d.properties.as_slice()).unwrap_or_default();
        let before =
            Resolved { properties: current.properties.clone(), secrets: current.secrets.clone(), resources: vec![] };
        let patch = input.properties.clone().unwrap_or_default();
        let checked = spec::validate_update(specs, before.clone(), &patch)
            .and_then(|r| support.map_or(Ok(()), |d| (d.check)(&r)).map(|()| r));
        let resolved = match checked {
            Ok(mut r) => {
                if let Some(d) = support {
                    (d.on_update)(&before, &mut r, now_ms());
                }
                r
            }
            Err(e) => {
                errors.0.extend(e.0);
                Resolved::default()
            }
        };
        let paths =
            input.resource_paths.as_deref().map(|raw| ResourcePath::parse_list("resourcePaths", raw, "", &mut errors));
        errors.into_result()?;
        let changed_refs: Vec<_> = if input.properties.is_some() { resolved.resources.clone() } else { vec![] };
        self.check_resources(&org.id, paths.as_deref().unwrap_or_default(), &changed_refs).await?;
        if let Some(name) = input.name {
            current.name = name.trim().to_owned();
        }
        if let Some(enabled) = input.enabled {
            current.enabled = enabled;
        }
        if let Some(metadata) = input.metadata {
            current.metadata = metadata;
        }
        if let Some(paths) = paths {
            current.resource_paths = paths.into_iter().map(|(_, p)| p).collect();
        }
        if input.properties.is_some() {
            current.properties = resolved.properties;
            current.secrets = resolved.secrets;
        }
        current.updated_at = now_ms();
        if !self.engine.store.update_integration(&current).await? {
            return Err(ConfigError::not_found("integration", &current.id));
        }
        self.engine.integration_changed(&org.id, &current.id);
        Ok(current)
    }

    /// Deletes the integration and its resource mappings.
    pub async fn delete_integration(&self, org: &Org, id: &IntegrationId) -> Result<(), ConfigError> {
        let found = self.engine.store.delete_integration(&org.id, id).await?;
        self.engine.integration_changed(&org.id, id);
        if found {
            tracing::info!(integration = %id, "integration deleted");
        }
        deleted(found, "integration", id)
    }
}
