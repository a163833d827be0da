//! Recipients of notification integrations (e-mail, SMS, phone). An e-mail
//! address is active once its syntax checks out. A phone number is sent a
//! six-digit code by SMS and stays pending, receiving nothing, until the
//! code is confirmed; codes expire after 10 minutes and allow 5 tries.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_core::recipient::CODE_ATTEMPTS;
use switchyard_core::spec::{is_e164, is_email};
use switchyard_core::{
    now_ms, Integration, IntegrationId, Recipient, RecipientId, RecipientKind, RecipientStatus, Verification,
};
use utoipa::ToSchema;

use super::{deleted, page_request, path_id, List, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Caller, Read, Write};
use crate::state::AppState;

const NAME_MAX: usize = 200;

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRecipient {
    /// An e-mail address (EMAIL integrations) or an E.164 phone number (SMS, PHONE).
    pub address: String,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRecipient {
    /// The six-digit code sent to the number.
    pub code: String,
}

/// The integration, which must take recipients, and the kind it takes.
async fn notifier(state: &AppState, caller: &Caller<impl Sized>, id: &str) -> ApiResult<(Integration, RecipientKind)> {
    let integration = super::integrations::load(state, &caller.org, id).await?;
    let kind = switchyard_connectors::find(&integration.type_key)
        .and_then(|t| t.recipients)
        .ok_or_else(|| ApiError::NotFound(format!("{} integrations have no recipients", integration.type_key)))?;
    Ok((integration, kind))
}

async fn load(
    state: &AppState,
    caller: &Caller<impl Sized>,
    integration: &Integration,
    id: &str,
) -> ApiResult<Recipient> {
    let id: RecipientId = path_id(id)?;
    state
        .store
        .get_recipient(&caller.org.id, &id)
        .await?
        .filter(|r| r.integration_id == integration.id)
        .ok_or_else(|| ApiError::not_found("recipient", &id))
}

/// Sends a fresh code to a phone recipient; on failure nothing changes.
async fn send_code(state: &AppState, integration: &Integration, recipient: &mut Recipient, now: i64) -> ApiResult<()> {
    let (code, verification) = Verification::issue(&recipient.id, now);
    state
        .engine
        .send_verification_code(integration, &recipient.address, &code)
        .await
        .map_err(|e| ApiError::Upstream(format!("the verification code could not be sent: {e}")))?;
    recipient.verification = Some(verification);
    Ok(())
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
    let (integration, kind) = notifier(&state, &caller, &id).await?;
    let address = body.address.trim().to_owned();
    match kind {
        RecipientKind::Email if !is_email(&address) => {
            return Err(ApiError::invalid("address", "must be an e-mail address (name@example.com)"))
        }
        RecipientKind::Phone if !is_e164(&address) => {
            return Err(ApiError::invalid(
                "address",
                "must be a phone number in E.164 form (+ then country code and number, e.g. +14155550123)",
            ))
        }
        _ => {}
    }
    let name = body.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > NAME_MAX) {
        return Err(ApiError::invalid("name", format!("must be at most {NAME_MAX} characters")));
    }
    let now = now_ms();
    let mut recipient = Recipient {
        id: RecipientId::new(),
        integration_id: integration.id.clone(),
        kind,
        address,
        name,
        status: if kind == RecipientKind::Email { RecipientStatus::Active } else { RecipientStatus::Pending },
        verification: None,
        created_at: now,
        updated_at: now,
    };
    if kind == RecipientKind::Phone {
        // No code goes to a number the integration already has.
        if state.store.find_recipient(&caller.org.id, &integration.id, &recipient.address).await?.is_some() {
            return Err(ApiError::Conflict(format!("`{}` is already a recipient", recipient.address)));
        }
        send_code(&state, &integration, &mut recipient, now).await?;
    }
    state.store.create_recipient(&caller.org.id, &recipient).await?;
    state.engine.integration_changed(&caller.org.id, &integration.id);
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
    let (integration, _) = notifier(&state, &caller, &id).await?;
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
    let (integration, _) = notifier(&state, &caller, &id).await?;
    Ok(Json(load(&state, &caller, &integration, &recipient).await?.into()))
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
    let (integration, _) = notifier(&state, &caller, &id).await?;
    let r = load(&state, &caller, &integration, &recipient).await?;
    let found = state.store.delete_recipient(&caller.org.id, &r, now_ms()).await?;
    state.engine.integration_changed(&caller.org.id, &integration.id);
    deleted(found, "recipient", &r.id)
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
    let (integration, _) = notifier(&state, &caller, &id).await?;
    let mut r = load(&state, &caller, &integration, &recipient).await?;
    if r.status == RecipientStatus::Active {
        return Err(ApiError::Conflict(format!("recipient {} is already active", r.id)));
    }
    let now = now_ms();
    let Some(mut v) = r.verification.clone() else {
        return Err(ApiError::invalid("code", "no code is pending; send a new one with …/send-code"));
    };
    if v.attempts >= CODE_ATTEMPTS {
        return Err(ApiError::invalid("code", "too many wrong codes; send a new one with …/send-code"));
    }
    if now > v.expires_at {
        return Err(ApiError::invalid("code", "the code has expired; send a new one with …/send-code"));
    }
    if !v.matches(&r.id, &body.code) {
        v.attempts += 1;
        let left = CODE_ATTEMPTS - v.attempts;
        r.verification = Some(v);
        r.updated_at = now;
        state.store.update_recipient(&caller.org.id, &r).await?;
        return Err(ApiError::invalid("code", format!("is not the code sent ({left} tries left)")));
    }
    r.status = RecipientStatus::Active;
    r.verification = None;
    r.updated_at = now;
    state.store.update_recipient(&caller.org.id, &r).await?;
    state.engine.integration_changed(&caller.org.id, &integration.id);
    Ok(Json(r.into()))
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
    let (integration, _) = notifier(&state, &caller, &id).await?;
    let mut r = load(&state, &caller, &integration, &recipient).await?;
    if r.status == RecipientStatus::Active {
        return Err(ApiError::Conflict(format!("recipient {} is already active", r.id)));
    }
    let now = now_ms();
    send_code(&state, &integration, &mut r, now).await?;
    r.updated_at = now;
    state.store.update_recipient(&caller.org.id, &r).await?;
    Ok(Json(r.into()))
}
