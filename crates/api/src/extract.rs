//! Extractors: who is calling (and may they), and request bodies and queries
//! parsed at the boundary with errors that name the field.
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use switchyard_core::{ApiKey, Org, Scope};

use crate::error::ApiError;
use crate::state::AppState;

pub trait ScopeMarker: Send + Sync + 'static {
    const SCOPE: Scope;
}
/// GET requests.
pub struct Read;
/// Create, update, delete and actions.
pub struct Write;
impl ScopeMarker for Read {
    const SCOPE: Scope = Scope::Read;
}
impl ScopeMarker for Write {
    const SCOPE: Scope = Scope::Write;
}

/// The authenticated caller, holding at least scope `S`. Handlers take it as
/// an argument; authorization never happens inside a handler.
pub struct Caller<S> {
    pub org: Org,
    pub key: ApiKey,
    _scope: PhantomData<S>,
}

impl<S: ScopeMarker> FromRequestParts<AppState> for Caller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get("x-api-key")
            .ok_or(ApiError::Unauthorized("missing X-Api-Key header".into()))?
            .to_str()
            .map_err(|_| ApiError::Unauthorized("the API key is not valid".into()))?;
        let hash = switchyard_core::keys::hash_api_key(presented.trim());
        let (key, org) = match state.keys.get(&hash) {
            Some(found) => found,
            None => {
                let found = state
                    .store
                    .authenticate(&hash)
                    .await?
                    .ok_or(ApiError::Unauthorized("the API key is not valid".into()))?;
                state.keys.put(hash, &found.0, &found.1);
                found
            }
        };
        if key.scope < S::SCOPE {
            return Err(ApiError::Forbidden("this API key has read scope; the request needs write"));
        }
        Ok(Caller { org, key, _scope: PhantomData })
    }
}

/// A JSON body: 415 when it is not JSON, 413 when too large, 400 when it does
/// not parse, 422 (with the field path) when it does not fit `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0).unwrap_or(crate::DEFAULT_BODY_LIMIT);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// From bytes to `T`: malformed JSON is a 400, JSON of the wrong shape a
/// 422 naming the field. A body that parses takes one plain pass; only a
/// failed one is parsed again, tracking the path, to name the field (the
/// tracking doubled the cost of reading a valid telemetry batch).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(bytes).or_else(|_| parse_json_with_path(bytes))?;
    refuse_nul(bytes)?;
    Ok(value)
}

/// No text the API takes may hold a NUL character (PostgreSQL cannot store
/// one; SQLite could, and the two stores must agree): a body that spells one (`\u0000`, the only way JSON
/// can) is looked at closely, and the first string holding one is named.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    if memchr::memmem::find(bytes, br"\u0000").is_none() {
        return Ok(());
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match nul_at(&value, String::new()) {
        Some(field) => Err(ApiError::invalid(field, "must not contain NUL characters")),
        None => Ok(()),
    }
}

/// The path of the first string (or object key) holding a NUL.
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() { "body".into() } else { path }),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, v)| nul_at(v, format!("{path}[{i}]")))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(if path.is_empty() { "body".into() } else { path.clone() });
            }
            nul_at(v, join(k))
        }),
        _ => None,
    }
}

fn parse_json_with_path<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if matches!(e.inner().classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof) {
            return ApiError::BadRequest(format!("the request body is not valid JSON: {}", e.inner()));
        }
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = match (path.as_str(), unknown_field(&message)) {
            (".", Some(name)) => name,
            (".", None) => "body".to_owned(),
            // A missing or repeated field is reported at its parent's path.
            (_, Some(name)) if message.starts_with("missing") || message.starts_with("duplicate") => {
                format!("{path}.{name}")
            }
            _ => path,
        };
        ApiError::invalid(field, message)
    })?;
    de.end().map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde reports unknown, missing and repeated fields at the parent's path; name the field itself.
fn unknown_field(message: &str) -> Option<String> {
    let rest = ["unknown field `", "missing field `", "duplicate field `"]
        .into_iter()
        .find_map(|prefix| message.strip_prefix(prefix))?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// The request body limit, recorded for the 413 message.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A query string: 422 naming the parameter when it does not fit `T`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::invalid(name.replace('\0', ""), "must not contain NUL characters"));
        }
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            let field = if path == "." { unknown_field(&message).unwrap_or_else(|| "query".to_owned()) } else { path };
            ApiError::invalid(field, message)
        })
    }
}
