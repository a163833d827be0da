//! The ingress message log: every message an ingress integration received,
//! with what became of it (stored with its records, duplicate, unmapped,
//! decode error with the reason) and the start of its payload.
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use switchyard_core::{LoggedMessage, MessageOutcome};
use switchyard_store::MessageFilter;
use utoipa::IntoParams;

use super::{page_request, List};
use crate::error::ApiResult;
use crate::extract::{ApiQuery, Caller, Read};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// `stored`, `duplicate`, `unmapped` or `decode_error`.
    pub outcome: Option<MessageOutcome>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9A-Za-z_]{1,64}$")]
    pub cursor: Option<String>,
}

/// An ingress integration's messages, newest first.
#[utoipa::path(get, operation_id = "listMessages", path = "/v2/integrations/{integrationId}/messages", tag = "integrations",
    params(("integrationId" = String, Path, description = "`int_` id"), MessageQuery),
    responses((status = 200, body = List<LoggedMessage>), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<MessageQuery>,
) -> ApiResult<Json<List<LoggedMessage>>> {
    let page = page_request(query.limit, query.cursor)?;
    let integration = super::integrations::load_ingress(&state, &caller.org, &id, "receive messages").await?;
    let filter = MessageFilter { outcome: query.outcome };
    let found = state.store.list_messages(&caller.org.id, &integration.id, &filter, &page).await?;
    Ok(Json(List::from_page(found, |m| m)))
}
