//! Recipients of notification integrations (e-mail, SMS, phone). An e-mail
//! address is active once its syntax checks out. A phone number is sent a
//! six-digit code by SMS and stays pending, receiving nothing, until the
//! code is confirmed; codes expire after 10 minutes and allow 5 tries.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use switchyard_core::input::{CreateRecipient, VerifyRecipient};
use switchyard_core::recipient::CODE_ATTEMPTS;
use switchyard_core::{IntegrationId, Recipient, RecipientId, RecipientKind, RecipientStatus};
use utoipa::ToSchema;

use super::{page_request, path_id, List, PageQuery};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingCode {
    /// When the code sent last stops working (ms since the epoch).
    pub expires_at: i64,
    /// Wrong codes that may still be tried.
    pub attempts_left: u32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecipientView {
    pub id: RecipientId,
    pub integration_id: IntegrationId,
    pub kind: RecipientKind,
    /// An e-mail address, or a phone number in E.164 form.
    pub address: String,
    pub name: Option<String>,
    /// `active` receives notifications; `pending` waits for its code.
    pub status: RecipientStatus,
    pub verification: Option<PendingCode>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Recipient> for RecipientView {
    fn from(r: Recipient) -> Self {
        let verification = r
            .verification
            .filter(|_| r.status == RecipientStatus::Pending)
            .map(|v| PendingCode { expires_at: v.expires_at, attempts_left: CODE_ATTEMPTS.saturating_sub(v.attempts) });
        Self {
            id: r.id,
            integration_id: r.integration_id,
            kind: r.kind,
            address: r.address,
            name: r.name,
            status: r.status,
            verification,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The ids of a recipient's path.
fn ids(integration: &str, recipient: &str) -> ApiResult<(IntegrationId, RecipientId)> {
    Ok((path_id(integration)?, path_id(recipient)?))
}

/// Adds a recipient. An e-mail address is active at once; a phone number is
/// sent a code by SMS and is `pending` until `…/verify` confirms it (502, and
/// nothing stored, when the code cannot be sent). 409 for an address the
/// integration already has.
#[utoipa::path(post, operation_id = "createRecipient", path = "/v2/integrations/{integrationId}/recipients", tag = "recipients",
    params(("integrationId" = String, Path, description = "`int_` id")), request_body = CreateRecipient,
    responses((status = 201, body = RecipientView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 409, body = crate::Problem), (status = 413, body = crate::Problem),
        (status = 415, body = crate::Problem), (status = 422, body = crate::Problem), (status = 502, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateRecipient>,
) -> ApiResult<(StatusCode, Json<RecipientView>)> {
    let id: IntegrationId = path_id(&id)?;
    let recipient = state.engine.config().create_recipient(&caller.org.id, &id, body).await?;
    Ok((StatusCode::CREATED, Json(recipient.into())))
}

#[utoipa::path(get, operation_id = "listRecipients", path = "/v2/integrations/{integrationId}/recipients", tag = "recipients",
    params(("integrationId" = String, Path, description = "`int_` id"), PageQuery),
    responses((status = 200, body = List<RecipientView>), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<List<RecipientView>>> {
    let page = page_request(query.limit, query.cursor)?;
    let (integration, _) = state.engine.config().notifier(&caller.org.id, &path_id(&id)?).await?;
    let found = state.store.list_recipients(&caller.org.id, &integration.id, &page).await?;
    Ok(Json(List::from_page(found, RecipientView::from)))
}

#[utoipa::path(get, operation_id = "getRecipient", path = "/v2/integrations/{integrationId}/recipients/{recipientId}", tag = "recipients",
    params(("integrationId" = String, Path, description = "`int_` id"), ("recipientId" = String, Path, description = "`rcp_` id")),
    responses((status = 200, body = RecipientView), (status = 401, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Read>,
    Path((id, recipient)): Path<(String, String)>,
) -> ApiResult<Json<RecipientView>> {
    let (integration, recipient) = ids(&id, &recipient)?;
    let (_, r) = state.engine.config().recipient(&caller.org.id, &integration, &recipient).await?;
    Ok(Json(r.into()))
}

#[utoipa::path(delete, operation_id = "deleteRecipient", path = "/v2/integrations/{integrationId}/recipients/{recipientId}", tag = "recipients",
    params(("integrationId" = String, Path, description = "`int_` id"), ("recipientId" = String, Path, description = "`rcp_` id")),
    responses((status = 204), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path((id, recipient)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (integration, recipient) = ids(&id, &recipient)?;
    state.engine.config().delete_recipient(&caller.org.id, &integration, &recipient).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms a phone number with the code sent to it: it becomes `active`.
/// 422 for a wrong or expired code (naming `code`); after 5 wrong codes the
/// code is void and `…/send-code` must send a new one.
#[utoipa::path(post, operation_id = "verifyRecipient", path = "/v2/integrations/{integrationId}/recipients/{recipientId}/verify", tag = "recipients",
    params(("integrationId" = String, Path, description = "`int_` id"), ("recipientId" = String, Path, description = "`rcp_` id")),
    request_body = VerifyRecipient,
    responses((status = 200, body = RecipientView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 409, body = crate::Problem), (status = 415, body = crate::Problem),
        (status = 422, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path((id, recipient)): Path<(String, String)>,
    ApiJson(body): ApiJson<VerifyRecipient>,
) -> ApiResult<Json<RecipientView>> {
    let (integration, recipient) = ids(&id, &recipient)?;
    Ok(Json(state.engine.config().verify_recipient(&caller.org.id, &integration, &recipient, body).await?.into()))
}

/// Sends a pending phone recipient a new code (the old one stops working),
/// valid for 10 minutes with 5 tries.
#[utoipa::path(post, operation_id = "sendRecipientCode", path = "/v2/integrations/{integrationId}/recipients/{recipientId}/send-code", tag = "recipients",
    params(("integrationId" = String, Path, description = "`int_` id"), ("recipientId" = String, Path, description = "`rcp_` id")),
    responses((status = 200, body = RecipientView), (status = 401, body = crate::Problem), (status = 403, body = crate::Problem),
        (status = 404, body = crate::Problem), (status = 409, body = crate::Problem), (status = 502, body = crate::Problem)),
    security(("apiKey" = [])))]
pub async fn send_new_code(
    State(state): State<AppState>,
    caller: Caller<Write>,
    Path((id, recipient)): Path<(String, String)>,
) -> ApiResult<Json<RecipientView>> {
    let (integration, recipient) = ids(&id, &recipient)?;
    Ok(Json(state.engine.config().send_recipient_code(&caller.org.id, &integration, &recipient).await?.into()))
}
