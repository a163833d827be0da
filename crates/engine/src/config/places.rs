//! Places (a tree) and devices (each in a Place). Both feed routing (a
//! trigger's scope covers a Place's subtree), so every change here
//! invalidates the organization's routes.
use switchyard_core::input::{CreateDevice, CreatePlace, UpdateDevice, UpdatePlace};
use switchyard_core::{
    now_ms, validate_location, validate_metadata, validate_name, Device, DeviceId, OrgId, Place, PlaceId,
    ValidationErrors,
};

use super::{deleted, ConfigError, Configuration};

const DEVICE_TYPE_MAX: usize = 100;

fn check_device_type(value: &str, errors: &mut ValidationErrors) {
    if value.trim().is_empty() || value.chars().count() > DEVICE_TYPE_MAX {
        errors.push("deviceType", format!("must be 1 to {DEVICE_TYPE_MAX} characters"));
    }
}

impl Configuration<'_> {
    /// Parses a Place id given in a body (`field`) and checks that the Place exists.
    async fn existing_place(&self, org: &OrgId, field: &'static str, raw: &str) -> Result<PlaceId, ConfigError> {
        let id = PlaceId::parse(raw).map_err(|e| ValidationErrors::one(field, e.to_string()))?;
        match self.engine.store.get_place(org, &id).await? {
            Some(_) => Ok(id),
            None => Err(ValidationErrors::one(field, format!("no place `{id}`")).into()),
        }
    }

    pub async fn create_place(&self, org: &OrgId, input: CreatePlace) -> Result<Place, ConfigError> {
        let mut errors = ValidationErrors::default();
        validate_name("name", &input.name, &mut errors);
        validate_metadata("metadata", &input.metadata, &mut errors);
        if let Some(location) = &input.location {
            validate_location("location", location, &mut errors);
        }
        errors.into_result()?;
        let parent_id = match &input.parent_id {
            Some(raw) => Some(self.existing_place(org, "parentId", raw).await?),
            None => None,
        };
        let now = now_ms();
        let place = Place {
            id: PlaceId::new(),
            name: input.name.trim().to_owned(),
            parent_id,
            metadata: input.metadata,
            location: input.location,
            created_at: now,
            updated_at: now,
        };
        self.engine.store.create_place(org, &place).await?;
        Ok(place)
    }

    pub async fn update_place(&self, org: &OrgId, id: &PlaceId, input: UpdatePlace) -> Result<Place, ConfigError> {
        let mut place =
            self.engine.store.get_place(org, id).await?.ok_or_else(|| ConfigError::not_found("place", id))?;
        let mut errors = ValidationErrors::default();
        if let Some(name) = &input.name {
            validate_name("name", name, &mut errors);
        }
        if let Some(metadata) = &input.metadata {
            validate_metadata("metadata", metadata, &mut errors);
        }
        if let Some(Some(location)) = &input.location {
            validate_location("location", location, &mut errors);
        }
        errors.into_result()?;
        match &input.parent_id {
            None => {}
            Some(None) => place.parent_id = None,
            Some(Some(raw)) => place.parent_id = Some(self.existing_place(org, "parentId", raw).await?),
        }
        if let Some(name) = input.name {
            place.name = name.trim().to_owned();
        }
        if let Some(metadata) = input.metadata {
            place.metadata = metadata;
        }
        if let Some(location) = input.location {
            place.location = location;
        }
        place.updated_at = now_ms();
        if !self.engine.store.update_place(org, &place).await? {
            return Err(ConfigError::not_found("place", &place.id));
        }
        self.engine.routes_changed(org);
        Ok(place)
    }

    /// Refused (409) while the Place has child Places, devices or mappings.
    pub async fn delete_place(&self, org: &OrgId, id: &PlaceId) -> Result<(), ConfigError> {
        let found = self.engine.store.delete_place(org, id).await?;
        self.engine.routes_changed(org);
        deleted(found, "place", id)
    }

    pub async fn create_device(&self, org: &OrgId, input: CreateDevice) -> Result<Device, ConfigError> {
        let mut errors = ValidationErrors::default();
        validate_name("name", &input.name, &mut errors);
        check_device_type(&input.device_type, &mut errors);
        validate_metadata("externalIds", &input.external_ids, &mut errors);
        validate_metadata("metadata", &input.metadata, &mut errors);
        errors.into_result()?;
        let place_id = self.existing_place(org, "placeId", &input.place_id).await?;
        let now = now_ms();
        let device = Device {
            id: DeviceId::new(),
            name: input.name.trim().to_owned(),
            place_id,
            device_type: input.device_type.trim().to_owned(),
            external_ids: input.external_ids,
            metadata: input.metadata,
            created_at: now,
            updated_at: now,
        };
        self.engine.store.create_device(org, &device).await?;
        Ok(device)
    }

    pub async fn update_device(&self, org: &OrgId, id: &DeviceId, input: UpdateDevice) -> Result<Device, ConfigError> {
        let mut device =
            self.engine.store.get_device(org, id).await?.ok_or_else(|| ConfigError::not_found("device", id))?;
        let mut errors = ValidationErrors::default();
        if let Some(name) = &input.name {
            validate_name("name", name, &mut errors);
        }
        if let Some(t) = &input.device_type {
            check_device_type(t, &mut errors);
        }
        if let Some(ids) = &input.external_ids {
            validate_metadata("externalIds", ids, &mut errors);
        }
        if let Some(metadata) = &input.metadata {
            validate_metadata("metadata", metadata, &mut errors);
        }
        errors.into_result()?;
        if let Some(raw) = &input.place_id {
            device.place_id = self.existing_place(org, "placeId", raw).await?;
        }
        if let Some(name) = input.name {
            device.name = name.trim().to_owned();
        }
        if let Some(t) = input.device_type {
            device.device_type = t.trim().to_owned();
        }
        if let Some(ids) = input.external_ids {
            device.external_ids = ids;
        }
        if let Some(metadata) = input.metadata {
            device.metadata = metadata;
        }
        device.updated_at = now_ms();
        if !self.engine.store.update_device(org, &device).await? {
            return Err(ConfigError::not_found("device", &device.id));
        }
        self.engine.routes_changed(org);
        Ok(device)
    }

    /// Refused (409) while resource mappings point at the device.
    pub async fn delete_device(&self, org: &OrgId, id: &DeviceId) -> Result<(), ConfigError> {
        let found = self.engine.store.delete_device(org, id).await?;
        self.engine.routes_changed(org);
        deleted(found, "device", id)
    }
}
