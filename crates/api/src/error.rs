//! The one API error type, rendered as `application/problem+json` (RFC 9457).
//!
//! Adding an error:
//! 1. add a variant below, carrying what the caller needs to fix the request;
//! 2. give it a status and a stable `code` in `parts()`;
//! 3. map the lower-level error into it with `From` (store) or at the call site;
//! 4. add a test that asserts the status, the code and, for validation, the field path.
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchyard_core::{FieldError, ValidationErrors};
use switchyard_store::StoreError;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(std::borrow::Cow<'static, str>),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request is invalid")]
    Validation(ValidationErrors),
    #[error("{0}")]
    BadRequest(String),
    /// A far side this request needed (an SMS provider, say) failed.
    #[error("{0}")]
    Upstream(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// Over a rate limit: retry after this many seconds (`Retry-After`).
    #[error("too many requests: retry after {0} s")]
    TooManyRequests(u64),
    /// Nothing can be taken now; retry after this many seconds (`Retry-After`).
    #[error("{0}")]
    Unavailable(String, u64),
    #[error("this route does not take {0}; the Allow header lists what it takes")]
    MethodNotAllowed(String),
    #[error("the request's path and query are longer than {0} bytes")]
    UriTooLong(usize),
    /// An error answered below the handlers (a path that is not UTF-8, say), with its text.
    #[error("{1}")]
    Other(StatusCode, String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` is the machine-readable kind.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
    /// For validation errors: each invalid field, by its JSON path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(ValidationErrors::one(field, message))
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("no {what} `{id}`"))
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not Found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Unprocessable Content"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", "Bad Request"),
            Self::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed", "Bad Gateway"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Content Too Large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported Media Type")
            }
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too Many Requests"),
            Self::Unavailable(..) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method Not Allowed"),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long", "URI Too Long"),
            Self::Other(status, _) => match *status {
                StatusCode::BAD_REQUEST => (*status, "bad_request", "Bad Request"),
                StatusCode::PAYLOAD_TOO_LARGE => (*status, "payload_too_large", "Content Too Large"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE => (*status, "unsupported_media_type", "Unsupported Media Type"),
                s if s.is_server_error() => (s, "internal", "Internal Server Error"),
                s => (s, "error", s.canonical_reason().unwrap_or("Error")),
            },
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal Server Error"),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::Validation(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(msg) | StoreError::InUse(msg) => Self::Conflict(msg),
            StoreError::Invalid { field, message } => Self::invalid(field, message),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<switchyard_engine::ConfigError> for ApiError {
    fn from(e: switchyard_engine::ConfigError) -> Self {
        use switchyard_engine::ConfigError;
        match e {
            ConfigError::NotFound(m) => Self::NotFound(m),
            ConfigError::Invalid(e) => Self::Validation(e),
            ConfigError::Conflict(m) => Self::Conflict(m),
            ConfigError::Upstream(m) => Self::Upstream(m),
            ConfigError::Store(e) => e.into(),
        }
    }
}

impl From<switchyard_engine::IngestError> for ApiError {
    fn from(e: switchyard_engine::IngestError) -> Self {
        match e {
            switchyard_engine::IngestError::Invalid(e) => Self::Validation(e),
            switchyard_engine::IngestError::Unmapped { errors, .. } => Self::Validation(errors),
            switchyard_engine::IngestError::Store(e) => e.into(),
            e @ switchyard_engine::IngestError::Fenced => Self::Unavailable(e.to_string(), 1),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title) = self.parts();
        let retry_after = match self {
            Self::TooManyRequests(s) | Self::Unavailable(_, s) => Some(s),
            _ => None,
        };
        let (detail, errors) = match self {
            Self::Validation(e) => (e.to_string(), e.0),
            Self::Internal(ref source) => {
                // Logged with its chain; answered without internals.
                let mut chain = source.to_string();
                let mut next = source.source();
                while let Some(cause) = next {
                    chain.push_str(": ");
                    chain.push_str(&cause.to_string());
                    next = cause.source();
                }
                tracing::error!(error = %chain, "request failed");
                ("the server could not complete the request; it has been logged".to_owned(), vec![])
            }
            other => (other.to_string(), vec![]),
        };
        let body = Problem { kind: "about:blank", title, status: status.as_u16(), code, detail, errors };
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
