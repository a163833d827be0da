//! HTTP_POLL (INGRESS): an HTTP API polled on a schedule, for vendors that
//! offer no push. Each poll asks for the window since the last one (the URL,
//! headers and body are templates over the window, the source's cursor and
//! the globals), follows the answer's pages, and hands each item of each
//! page to the decoders as one message. Conditional requests (`ETag`,
//! `Last-Modified`) make an unchanged answer a 304 that stores nothing.
mod source;

pub use source::{HttpPollConfig, HttpPollSource};

use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Globals, Integration, ValidationErrors};

use crate::egress::{BuildError, EgressContext};
use crate::ingress::Ingress;
use crate::poll::Polled;
use crate::shared::Settings;
use crate::{Category, ConnectorType, DirectionSupport};

pub const KEY: &str = "HTTP_POLL";

/// The properties rendered for each page (with the window), not at connect.
const PER_PAGE: [&str; 3] = ["url", "body", "headers"];

pub fn properties() -> Vec<P> {
    let mut own = vec![
        P::new("url", "URL", K::Url).required().templated().describe(
            "What each poll fetches: a template over the window (`{{ since }}` and `{{ until }}` in RFC 3339, \
             `{{ since_ms }}`, `{{ since_s }}`, … as numbers), the source's `{{ cursor }}` and the globals.",
        ),
        P::new("method", "Method", K::Enum).options(&["GET", "POST"]).default(json!("GET")),
        P::new("body", "Body", K::String).templated().describe("POST: the body, a template like the URL."),
        P::new("headers", "Headers", K::List)
            .templated()
            .describe("`Name: value` lines sent with every request; values are templates like the URL."),
        P::new("auth", "Authentication", K::Enum)
            .options(&["none", "bearer", "basic", "apiKey"])
            .default(json!("none")),
        P::new("token", "Bearer token", K::Secret).templated().describe("bearer: sent as `Authorization: Bearer …`."),
        P::new("username", "Username", K::String).templated().describe("basic: with the password."),
        P::new("password", "Password", K::Secret).templated(),
        P::new("apiKeyHeader", "API key header", K::String).default(json!("X-API-Key")),
        P::new("apiKey", "API key", K::Secret).templated().describe("apiKey: sent in the API key header."),
        crate::poll::interval_property(300.0, 1.0),
        P::new("itemsPointer", "Items pointer", K::String).describe(
            "A JSON pointer to the array of items in each answer (`/data`); each item is one message. Blank: an \
             answer that is an array holds the items, an object is one item.",
        ),
        P::new("pagination", "Pagination", K::Enum)
            .options(&["none", "nextUrl", "linkHeader", "page", "offset"])
            .default(json!("none"))
            .describe(
                "How the next page is found: nextUrl (a URL at the next pointer), linkHeader (`Link: <…>; \
                 rel=\"next\"`), page (a page number parameter, from the first page), offset (an offset \
                 parameter, advanced by the items received). Pages are followed until one is empty or names \
                 no next.",
            ),
        P::new("nextPointer", "Next page pointer", K::String)
            .describe("nextUrl: a JSON pointer to the next page's URL in the answer (`/links/next`)."),
        P::new("pageParameter", "Page parameter", K::String)
            .describe("page and offset: the query parameter (default `page` or `offset`)."),
        P::new("firstPage", "First page", K::Number).range(0.0, 1.0).default(json!(1)),
        P::new("cursorPointer", "Cursor pointer", K::String).describe(
            "A JSON pointer to a cursor in the answer: the last page's value is the next poll's `{{ cursor }}`.",
        ),
        P::new("conditional", "Conditional requests", K::Bool).default(json!(true)).describe(
            "Send `If-None-Match` and `If-Modified-Since` from the last answer's `ETag` and `Last-Modified`: a \
             304 stores nothing.",
        ),
        P::new("timeoutSeconds", "Timeout (s)", K::Number).range(1.0, 300.0).default(json!(30)),
    ];
    own.extend(crate::decode::properties());
    own
}

fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    let mut errors = ValidationErrors::default();
    crate::shared::check_headers(&s, &mut errors);
    let text = |name: &'static str| s.text(name).ok().flatten().filter(|t| !t.trim().is_empty());
    for pointer in ["itemsPointer", "nextPointer", "cursorPointer"] {
        if let Some(p) = text(pointer).filter(|p| !p.starts_with('/')) {
            errors.push(format!("properties.{pointer}"), format!("`{p}` is not a JSON pointer (it starts with `/`)"));
        }
    }
    let set = |name: &'static str| text(name).is_some() || s.secret(name).ok().flatten().is_some();
    let needs = |auth: &str, name: &'static str| text("auth") == Some(auth) && !set(name);
    for (auth, name) in [("bearer", "token"), ("basic", "username"), ("basic", "password"), ("apiKey", "apiKey")] {
        if needs(auth, name) {
            errors.push(format!("properties.{name}"), format!("is required with auth `{auth}`"));
        }
    }
    if text("pagination") == Some("nextUrl") && text("nextPointer").is_none() {
        errors.push("properties.nextPointer", "is required with pagination `nextUrl`");
    }
    if text("method") != Some("POST") && text("body").is_some() {
        errors.push("properties.body", "is sent with POST only");
    }
    crate::decode::check(resolved, &specs, errors)
}

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    let integration = crate::shared::rendered_except(integration, globals, &PER_PAGE)?;
    let config = HttpPollConfig::from_integration(&integration, globals)?;
    let interval = config.interval;
    Ok(Box::new(Polled::new(HttpPollSource::new(config, ctx), &integration, interval, interval)))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "HTTP polling".into(),
        description: "Poll an HTTP API on a schedule and take in what it answers.".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::ingress(properties(), check, build_ingress)],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    }
}
