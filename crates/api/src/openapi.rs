//! The router and the OpenAPI document are built together: each handler is
//! registered once, through `routes!`, which adds both its route and its
//! operation, so a route cannot exist without documentation.
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::routes::{
    actions, catalog, deliveries, devices, globals, inbound, integrations, mappings, messages, places, recipients,
    resources, telemetry, triggers,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchyard API", description = "Integrations hub for IoT and energy platforms. Send your API key in `X-Api-Key`."),
    modifiers(&Security),
    tags(
        (name = "integrations", description = "Integrations: create, list, read, update, delete"),
        (name = "catalog", description = "Integration types and their properties"),
        (name = "resources", description = "Resource paths: validate and browse"),
        (name = "resource-mappings", description = "External ids mapped to Places and devices"),
        (name = "places", description = "Places, a tree"),
        (name = "devices", description = "Devices (Things)"),
        (name = "telemetry", description = "Records in: values, events, alarms"),
        (name = "triggers", description = "What an egress integration receives"),
        (name = "deliveries", description = "The delivery log, and resending"),
        (name = "actions", description = "Asynchronous actions: test-send, backfill"),
        (name = "globals", description = "Organization-wide values for templated properties"),
        (name = "inbound", description = "HTTP inbound: where sources post messages (no API key: a token or a signature)"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
    }
}

/// The errors every operation of a kind can answer, because the extractors
/// and the middleware answer them alike (a body: 400 malformed, 413, 415,
/// 422; a query: 422; a path id: 400 not UTF-8, 404; a key: 401, and 403
/// for writes; any: 414), added where a handler's annotation leaves them out,
/// so the document lists every status the server sends.
fn standard_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            (&mut item.get, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.patch, true),
        ];
        for (op, writes) in operations {
            let Some(op) = op.as_mut() else { continue };
            let params = op.parameters.as_deref().unwrap_or_default();
            let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
            let (query, path) = (has(ParameterIn::Query), has(ParameterIn::Path));
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let body = op.request_body.is_some();
            let statuses = [
                (400, body || path),
                (401, secured),
                (403, secured && writes),
                (404, path),
                (413, body),
                (414, true),
                (415, body),
                (422, body || query),
            ];
            for (status, applies) in statuses {
                let code = status.to_string();
                if !applies || op.responses.responses.contains_key(&code) {
                    continue;
                }
                let reason = axum::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason());
                let response = ResponseBuilder::new()
                    .description(reason.unwrap_or("Error"))
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                    )
                    .build();
                op.responses.responses.insert(code, response.into());
            }
        }
    }
}

/// Errors are sent as `application/problem+json`; say so in the document.
fn problem_media_type(openapi: &mut utoipa::openapi::OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in operations.into_iter().flatten() {
            for response in op.responses.responses.values_mut() {
                let utoipa::openapi::RefOr::T(response) = response else { continue };
                let is_problem = response.content.get("application/json").is_some_and(|c| {
                    matches!(&c.schema, Some(utoipa::openapi::RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
                });
                if is_problem {
                    let content = response.content.shift_remove("application/json").expect("checked above");
                    response.content.insert("application/problem+json".into(), content);
                }
            }
        }
    }
}

/// The API's routes and the document that describes them.
pub(crate) fn build() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(catalog::catalog))
        .routes(routes!(catalog::mapping))
        .routes(routes!(catalog::properties))
        .routes(routes!(resources::validate_path))
        .routes(routes!(resources::resources))
        .routes(routes!(integrations::list, integrations::create))
        .routes(routes!(integrations::get, integrations::update, integrations::delete))
        .routes(routes!(mappings::list))
        .routes(routes!(mappings::create))
        .routes(routes!(mappings::delete))
        .routes(routes!(places::list, places::create))
        .routes(routes!(places::get, places::update, places::delete))
        .routes(routes!(devices::list, devices::create))
        .routes(routes!(devices::get, devices::update, devices::delete))
        .routes(routes!(telemetry::list, telemetry::ingest))
        .routes(routes!(messages::list))
        .routes(routes!(inbound::post))
        .routes(routes!(inbound::post_path))
        .routes(routes!(integrations::status_history))
        .routes(routes!(triggers::list, triggers::create))
        .routes(routes!(triggers::get, triggers::update, triggers::delete))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::get))
        .routes(routes!(deliveries::resend))
        .routes(routes!(actions::run))
        .routes(routes!(actions::get))
        .routes(routes!(actions::list))
        .routes(routes!(actions::cancel))
        .routes(routes!(globals::get, globals::put))
        .routes(routes!(recipients::list, recipients::create))
        .routes(routes!(recipients::get, recipients::delete))
        .routes(routes!(recipients::verify))
        .routes(routes!(recipients::send_new_code))
        .split_for_parts();
    standard_errors(&mut document);
    problem_media_type(&mut document);
    wildcard_templates(&mut document);
    (router, document)
}

/// axum's catch-all segment `{*path}` is `{path}` in an OpenAPI path template.
fn wildcard_templates(openapi: &mut utoipa::openapi::OpenApi) {
    let paths = std::mem::take(&mut openapi.paths.paths);
    openapi.paths.paths = paths.into_iter().map(|(path, item)| (path.replace("{*", "{"), item)).collect();
}
