use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P};

/// The webhook's properties. Delivery reads the same names.
pub fn properties() -> Vec<P> {
    const WITH_CREDENTIALS: &[&str] = &["BASIC", "DIGEST"];
    vec![
        P::new("url", "Base URL", K::Url)
            .required()
            .describe("Where records are sent; routes per kind are appended to it."),
        P::new("valuesRoute", "Values route", K::String)
            .describe("Path appended to the base URL for values, e.g. /values."),
        P::new("eventsRoute", "Events route", K::String).describe("Path appended to the base URL for events."),
        P::new("alarmsRoute", "Alarms route", K::String).describe("Path appended to the base URL for alarms."),
        P::new("method", "HTTP method", K::Enum).options(&["POST", "PUT", "PATCH"]).default(json!("POST")),
        P::new("headers", "Extra headers", K::List).describe("Headers added to every request, each as `Name: value`."),
        P::new("timeoutSeconds", "Request timeout (s)", K::Number).range(1.0, 120.0).default(json!(15)),
        P::new("batchSize", "Records per request", K::Number)
            .range(1.0, 1000.0)
            .default(json!(1))
            .describe("1 sends one record per request; more sends a JSON array."),
        P::new("batchLingerMs", "Batch linger (ms)", K::Number)
            .range(0.0, 10000.0)
            .default(json!(0))
            .describe("How long to wait for a batch to fill."),
        P::new("bodyTemplate", "Body template", K::Template)
            .describe("Renders the request body from `record` and `globals`; the record's JSON when empty."),
        P::new("secret", "Signing secret", K::Secret)
            .describe("`whsec_` secret for the `webhook-signature` header; generated and shown once when not given."),
        P::new("authType", "Authentication", K::Enum)
            .options(&["NONE", "BASIC", "DIGEST", "BEARER"])
            .default(json!("NONE")),
        P::new("username", "Username", K::String).required_when("authType", WITH_CREDENTIALS),
        P::new("password", "Password", K::Secret).required_when("authType", WITH_CREDENTIALS),
        P::new("token", "Bearer token", K::Secret).required_when("authType", &["BEARER"]),
        P::new("rateLimitPerSecond", "Rate limit (per second)", K::Number)
            .range(0.1, 100000.0)
            .describe("Requests per second at most; excess is delayed, never dropped. Unlimited when empty."),
    ]
}
