//! The `/v2` HTTP API: one module per resource under `routes/`, thin handlers
//! built from extractors (`Caller<Read|Write>`, `ApiJson`, `ApiQuery`), errors
//! as `application/problem+json`, and an OpenAPI document generated from the
//! same handler annotations that build the router, so the two cannot drift.
use std::future::Future;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};

pub mod error;
pub mod extract;
mod openapi;
mod routes;
pub mod state;

pub use error::{ApiError, Problem};
pub use state::{AppState, KEY_TTL};

/// Request bodies larger than this are refused with 413.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub body_limit: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { body_limit: DEFAULT_BODY_LIMIT }
    }
}

/// The OpenAPI document, as served at `/v2/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::build().1
}

pub fn router(state: AppState, config: &ApiConfig) -> Router {
    let (api, document) = openapi::build();
    let document = serde_json::to_vec(&document).expect("the OpenAPI document serialises");
    api.route(
        "/v2/openapi.json",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], document.clone()) }),
    )
    .route("/healthz", get(|| async { "ok" }))
    .route("/metrics", get(metrics))
    .route("/readyz", get(ready))
    .fallback(|| async { ApiError::NotFound("no such route".into()) })
    .layer(DefaultBodyLimit::max(config.body_limit))
    .layer(Extension(extract::BodyLimit(config.body_limit)))
    .layer(axum::middleware::from_fn(log_request))
    .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state.engine.render_metrics().await?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}

/// The longest path and query served; longer is a 414 (hyper's own limit is
/// far higher, and its answer would not be problem+json).
pub const URI_MAX: usize = 8 * 1024;

/// Every error is `application/problem+json`, also those answered below the
/// handlers: a 405 (which keeps axum's `Allow` header), a path that is not
/// UTF-8, a body too large for an extractor of axum's own.
async fn as_problem(method: &axum::http::Method, response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let error = if status == axum::http::StatusCode::METHOD_NOT_ALLOWED {
        ApiError::MethodNotAllowed(method.to_string())
    } else {
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_owned();
        ApiError::Other(status, if text.is_empty() { status.to_string() } else { text })
    };
    let mut problem = error.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

/// Around every request, in one layer: a path and query over [`URI_MAX`] is
/// a 414; every error leaves as problem+json; one log line per request:
/// method, path (no query: it may carry search terms), status, time.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = if request.uri().path_and_query().map_or(0, |p| p.as_str().len()) > URI_MAX {
        ApiError::UriTooLong(URI_MAX).into_response()
    } else {
        as_problem(&method, next.run(request).await).await
    };
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, status, ms, "request");
    }
    response
}

/// Serves the API on `listener` until `shutdown` completes, then finishes
/// the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state, config)).with_graceful_shutdown(shutdown).await
}
