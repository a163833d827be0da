//! One module per resource. Shared here: list envelopes and paging.
use serde::{Deserialize, Serialize};
use switchyard_store::{Page, PageRequest};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};

pub mod actions;
pub mod catalog;
pub mod deliveries;
pub mod devices;
pub mod globals;
pub mod inbound;
pub mod integrations;
pub mod mappings;
pub mod messages;
pub mod places;
pub mod recipients;
pub mod resources;
pub mod telemetry;
pub mod triggers;

/// `limit` and `cursor`, for list routes that take nothing else.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

/// A page of results; pass `nextCursor` as `cursor` for the next one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct List<T: ToSchema> {
    pub data: Vec<T>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> List<T> {
    pub fn from_page<U>(page: Page<U>, view: impl Fn(U) -> T) -> Self {
        Self { data: page.items.into_iter().map(view).collect(), next_cursor: page.next_cursor }
    }
}

/// Checks `limit` and `cursor` query parameters.
pub fn page_request(limit: Option<usize>, cursor: Option<String>) -> ApiResult<PageRequest> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    if let Some(c) = &cursor {
        if c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::invalid("cursor", "is not a cursor returned by this API"));
        }
    }
    Ok(PageRequest { limit, after: cursor })
}

/// Parses an id taken from the path; a malformed id names nothing, so 404.
pub fn path_id<K: switchyard_core::IdKind>(raw: &str) -> ApiResult<switchyard_core::Id<K>> {
    switchyard_core::Id::parse(raw).map_err(|_| ApiError::NotFound(format!("no {} `{raw}`", K::NAME.to_lowercase())))
}
