//! The catalog: which integration types exist, which the caller's
//! organization may use, and what each takes. Read through `Catalog`: the registry plus the
//! organization's own types.
use std::collections::BTreeMap;

use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_connectors::{Catalog as Types, Category, ConnectorType};
use switchyard_core::spec::PropertySpec;
use switchyard_core::Direction;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Caller, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    /// Works end to end; may be created.
    Available,
    /// Listed, not yet offered ("coming soon").
    Disabled,
}

impl Availability {
    fn of(available: bool) -> Self {
        if available {
            Self::Available
        } else {
            Self::Disabled
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CategoryView {
    Standard,
    Custom,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectionAvailability {
    pub direction: Direction,
    pub availability: Availability,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    #[serde(rename = "type")]
    pub type_key: String,
    pub name: String,
    pub description: String,
    pub category: CategoryView,
    /// The catalog section: "Integrations" or "Custom Integrations".
    pub section: &'static str,
    pub directions: Vec<DirectionAvailability>,
    /// `available` when at least one direction (the filtered one, if any) is.
    pub availability: Availability,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Catalog {
    pub data: Vec<CatalogEntry>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// Only types supporting this direction.
    pub direction: Option<Direction>,
    /// `available` or `disabled`.
    pub availability: Option<Availability>,
    /// Case-insensitive search in the type's key, name and description.
    pub q: Option<String>,
}

fn entry(t: &ConnectorType, direction: Option<Direction>) -> CatalogEntry {
    let (category, section) = match t.category {
        Category::Standard => (CategoryView::Standard, "Integrations"),
        Category::Custom => (CategoryView::Custom, "Custom Integrations"),
    };
    let available = match direction {
        Some(d) => t.direction(d).is_some_and(|s| s.available()),
        None => t.is_available(),
    };
    CatalogEntry {
        type_key: t.key.to_string(),
        name: t.name.to_string(),
        description: t.description.to_string(),
        category,
        section,
        directions: t
            .directions
            .iter()
            .map(|d| DirectionAvailability { direction: d.direction(), availability: Availability::of(d.available()) })
            .collect(),
        availability: Availability::of(available),
    }
}

/// The catalog of integration types for the caller's organization: the
/// create wizard's first step. Standard types first, then custom ones.
#[utoipa::path(get, operation_id = "getCatalog", path = "/v2/integrations/catalog", tag = "catalog", params(CatalogQuery),
    responses((status = 200, body = Catalog), (status = 401, body = crate::Problem)), security(("apiKey" = [])))]
pub async fn catalog(caller: Caller<Read>, ApiQuery(query): ApiQuery<CatalogQuery>) -> Json<Catalog> {
    let needle = query.q.as_deref().map(str::to_lowercase).filter(|q| !q.is_empty());
    let mut data: Vec<CatalogEntry> = Types::registry(&caller.org)
        .types()
        .filter(|t| query.direction.is_none_or(|d| t.direction(d).is_some()))
        .filter(|t| {
            needle.as_ref().is_none_or(|n| {
                [&t.key, &t.name, &t.description].iter().any(|field| field.to_lowercase().contains(n.as_str()))
            })
        })
        .map(|t| entry(t, query.direction))
        .filter(|e| query.availability.is_none_or(|a| e.availability == a))
        .collect();
    data.sort_by_key(|e| e.category == CategoryView::Custom);
    Json(Catalog { data })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupportedType {
    #[serde(rename = "type")]
    pub type_key: String,
    pub available: bool,
}

/// The types supported in each direction, for the caller's organization.
#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case)]
pub struct DirectionMapping {
    pub INGRESS: Vec<SupportedType>,
    pub EGRESS: Vec<SupportedType>,
}

/// The integration types supported per direction.
#[utoipa::path(get, operation_id = "getDirectionMapping", path = "/v2/integrations/mapping", tag = "catalog",
    responses((status = 200, body = DirectionMapping), (status = 401, body = crate::Problem)), security(("apiKey" = [])))]
pub async fn mapping(caller: Caller<Read>) -> Json<DirectionMapping> {
    let mut by_direction: BTreeMap<&str, Vec<SupportedType>> = BTreeMap::new();
    for t in Types::registry(&caller.org).types() {
        for d in &t.directions {
            by_direction
                .entry(d.direction().as_str())
                .or_default()
                .push(SupportedType { type_key: t.key.to_string(), available: d.available() });
        }
    }
    Json(DirectionMapping {
        INGRESS: by_direction.remove("INGRESS").unwrap_or_default(),
        EGRESS: by_direction.remove("EGRESS").unwrap_or_default(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PropertiesQuery {
    /// The type key, e.g. `WEBHOOK`.
    #[serde(rename = "type")]
    pub type_key: String,
    /// Only this direction's properties (for types that support both).
    pub direction: Option<Direction>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectionProperties {
    pub direction: Direction,
    pub availability: Availability,
    pub properties: Vec<PropertySpec>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeProperties {
    #[serde(rename = "type")]
    pub type_key: String,
    pub name: String,
    pub directions: Vec<DirectionProperties>,
}

/// The property specs of a type: what the wizard's second step asks for.
#[utoipa::path(get, operation_id = "getTypeProperties", path = "/v2/integrations/properties", tag = "catalog", params(PropertiesQuery),
    responses((status = 200, body = TypeProperties), (status = 401, body = crate::Problem), (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn properties(
    caller: Caller<Read>,
    ApiQuery(query): ApiQuery<PropertiesQuery>,
) -> ApiResult<Json<TypeProperties>> {
    let t = Types::registry(&caller.org)
        .find(&query.type_key)
        .ok_or_else(|| ApiError::invalid("type", format!("unknown integration type `{}`", query.type_key)))?;
    if let Some(d) = query.direction.filter(|d| t.direction(*d).is_none()) {
        return Err(ApiError::invalid("direction", format!("{} does not support {}", t.key, d.as_str())));
    }
    Ok(Json(TypeProperties {
        type_key: t.key.to_string(),
        name: t.name.to_string(),
        directions: t
            .directions
            .iter()
            .filter(|d| query.direction.is_none_or(|want| want == d.direction()))
            .map(|d| DirectionProperties {
                direction: d.direction(),
                availability: Availability::of(d.available()),
                properties: d.properties.clone(),
            })
            .collect(),
    }))
}
