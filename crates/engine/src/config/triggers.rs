//! Triggers: what an egress integration receives (kinds × objects ×
//! scope). Routing indexes them, so every change invalidates the
//! organization's routes.
use switchyard_core::input::{CreateTrigger, UpdateTrigger};
use switchyard_core::{
    now_ms, Direction, Integration, IntegrationId, OrgId, RecordKind, ResourcePath, Trigger, TriggerId,
    ValidationErrors, NAME_MAX,
};

use super::{deleted, ConfigError, Configuration};

const OBJECTS_MAX: usize = 256;
const PATTERN_MAX: usize = 256;
/// What to do instead of naming the root in a scope.
const SCOPE_HINT: &str = " (leave scope empty for everywhere)";

fn check_kinds(kinds: &[RecordKind], errors: &mut ValidationErrors) -> Vec<RecordKind> {
    if kinds.is_empty() {
        errors.push("kinds", "must name at least one of value, event, alarm");
    }
    let mut out = kinds.to_vec();
    out.sort();
    out.dedup();
    out
}

fn check_objects(objects: &[String], errors: &mut ValidationErrors) -> Vec<String> {
    if objects.len() > OBJECTS_MAX {
        errors.push("objects", format!("must have at most {OBJECTS_MAX} patterns"));
    }
    for (i, o) in objects.iter().enumerate() {
        if o.trim().is_empty() || o.len() > PATTERN_MAX {
            errors.push(format!("objects[{i}]"), format!("must be 1 to {PATTERN_MAX} characters"));
        }
    }
    objects.iter().map(|o| o.trim().to_owned()).collect()
}

fn check_name(name: &str, errors: &mut ValidationErrors) {
    if name.chars().count() > NAME_MAX {
        errors.push("name", format!("must be at most {NAME_MAX} characters"));
    }
}

impl Configuration<'_> {
    /// The integration, which must be an EGRESS one.
    async fn egress(&self, org: &OrgId, id: &IntegrationId) -> Result<Integration, ConfigError> {
        let integration = self.integration(org, id).await?;
        if integration.direction != Direction::Egress {
            return Err(ValidationErrors::one("integrationId", "triggers belong to EGRESS integrations").into());
        }
        Ok(integration)
    }

    /// The trigger, which must belong to the integration.
    async fn trigger(&self, org: &OrgId, integration: &IntegrationId, id: &TriggerId) -> Result<Trigger, ConfigError> {
        let integration = self.integration(org, integration).await?;
        match self.engine.store.get_trigger(org, id).await? {
            Some(t) if t.integration_id == integration.id => Ok(t),
            _ => Err(ConfigError::not_found("trigger", id)),
        }
    }

    pub async fn create_trigger(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        input: CreateTrigger,
    ) -> Result<Trigger, ConfigError> {
        let integration = self.egress(org, integration).await?;
        let mut errors = ValidationErrors::default();
        check_name(&input.name, &mut errors);
        let kinds = check_kinds(&input.kinds, &mut errors);
        let objects = check_objects(&input.objects, &mut errors);
        let scope = ResourcePath::parse_list("scope", &input.scope, SCOPE_HINT, &mut errors);
        errors.into_result()?;
        self.check_resources(org, &scope, &[]).await?;
        let now = now_ms();
        let trigger = Trigger {
            id: TriggerId::new(),
            integration_id: integration.id,
            name: input.name.trim().to_owned(),
            kinds,
            objects,
            scope: scope.into_iter().map(|(_, p)| p).collect(),
            active: input.active,
            created_at: now,
            updated_at: now,
        };
        self.engine.store.create_trigger(org, &trigger).await?;
        self.engine.routes_changed(org);
        Ok(trigger)
    }

    pub async fn update_trigger(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        id: &TriggerId,
        input: UpdateTrigger,
    ) -> Result<Trigger, ConfigError> {
        let mut t = self.trigger(org, integration, id).await?;
        let mut errors = ValidationErrors::default();
        let kinds = input.kinds.as_deref().map(|k| check_kinds(k, &mut errors));
        let objects = input.objects.as_deref().map(|o| check_objects(o, &mut errors));
        let scope = input.scope.as_deref().map(|s| ResourcePath::parse_list("scope", s, SCOPE_HINT, &mut errors));
        if let Some(name) = &input.name {
            check_name(name, &mut errors);
        }
        errors.into_result()?;
        if let Some(scope) = &scope {
            self.check_resources(org, scope, &[]).await?;
        }
        if let Some(name) = input.name {
            t.name = name.trim().to_owned();
        }
        if let Some(kinds) = kinds {
            t.kinds = kinds;
        }
        if let Some(objects) = objects {
            t.objects = objects;
        }
        if let Some(scope) = scope {
            t.scope = scope.into_iter().map(|(_, p)| p).collect();
        }
        if let Some(active) = input.active {
            t.active = active;
        }
        t.updated_at = now_ms();
        if !self.engine.store.update_trigger(org, &t).await? {
            return Err(ConfigError::not_found("trigger", &t.id));
        }
        self.engine.routes_changed(org);
        Ok(t)
    }

    pub async fn delete_trigger(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        id: &TriggerId,
    ) -> Result<(), ConfigError> {
        let t = self.trigger(org, integration, id).await?;
        let found = self.engine.store.delete_trigger(org, &t.id).await?;
        self.engine.routes_changed(org);
        deleted(found, "trigger", &t.id)
    }
}
