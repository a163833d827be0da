//! UTILITY_DATA (INGRESS): a utility's meter interval and billing data,
//! polled like every polled type, from one of two provider shapes:
//!
//! - `greenButton`: Green Button Connect My Data, a subscription's ESPI
//!   Atom feed (`Batch/Subscription/{id}`, the range by `published-min` /
//!   `published-max`), with an OAuth 2 bearer token renewed by its refresh
//!   token on a 401 (the renewed tokens kept encrypted);
//! - `intervals`: a JSON intervals API in the UtilityAPI style
//!   (`/intervals?meters=…&start=…&end=…`, pages by its `next` URL).
//!
//! Each usage point or meter is an external id, mapped to a device through
//! the integration's resource mappings (or made in `place`); each interval
//! becomes records keyed by (meter, property, interval start), so a reading
//! fetched again is stored once.
mod espi;
mod source;

use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Globals, Integration, ValidationErrors};

use crate::egress::{BuildError, EgressContext};
use crate::ingress::Ingress;
use crate::poll::Polled;
use crate::shared::Settings;
use crate::{Category, ConnectorType, DirectionSupport};

pub use espi::{readings as espi_readings, Reading, ReadingType};
pub use source::{UtilityConfig, UtilitySource};

pub const KEY: &str = "UTILITY_DATA";

pub fn properties() -> Vec<P> {
    let mut own = vec![
        P::new("provider", "Provider", K::Enum).options(&["greenButton", "intervals"]).required().describe(
            "greenButton: Green Button Connect My Data (ESPI Atom feeds, OAuth 2); intervals: a JSON intervals API \
             (`/intervals?meters=…&start=…&end=…` with a `next` URL).",
        ),
        P::new("apiUrl", "API URL", K::Url).required().templated().describe(
            "greenButton: the Data Custodian's resource base (`https://…/DataCustodian/espi/1_1/resource`); \
             intervals: the API's base (`https://…/api/v2`).",
        ),
        P::new("subscriptionId", "Subscription id", K::String)
            .templated()
            .describe("greenButton: the subscription the token was granted for (`Batch/Subscription/{id}`)."),
        P::new("meters", "Meters", K::List).describe("intervals: the meters' ids asked for (`meters=`)."),
        P::new("accessToken", "Access token", K::Secret)
            .required()
            .templated()
            .describe("Sent as `Authorization: Bearer …`."),
        P::new("refreshToken", "Refresh token", K::Secret)
            .templated()
            .describe("greenButton: renews the access token when the Data Custodian answers 401."),
        P::new("tokenUrl", "Token URL", K::Url).describe("greenButton: the OAuth 2 token endpoint."),
        P::new("clientId", "Client id", K::String).templated(),
        P::new("clientSecret", "Client secret", K::Secret).templated(),
        crate::poll::interval_property(3600.0, 60.0),
        P::new("lookbackHours", "Look back (h)", K::Number).range(0.0, 24.0 * 31.0).default(json!(72)).describe(
            "intervals: each poll asks again for this many hours before the last one, for readings the utility \
             publishes late (those already stored are not stored again).",
        ),
        P::new("timeoutSeconds", "Timeout (s)", K::Number).range(1.0, 300.0).default(json!(60)),
    ];
    // Where new meters' devices go, the pace, the silence: as every ingress type.
    own.extend(
        crate::decode::properties()
            .into_iter()
            .filter(|p| matches!(&*p.name, "place" | "rateLimitPerSecond" | "expectedIntervalSeconds")),
    );
    own
}

fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    let mut errors = ValidationErrors::default();
    let text = |name: &'static str| s.text(name).ok().flatten().filter(|t| !t.trim().is_empty());
    let secret = |name: &'static str| s.secret(name).ok().flatten().is_some();
    match text("provider") {
        Some("greenButton") => {
            if text("subscriptionId").is_none() {
                errors.push("properties.subscriptionId", "is required with provider `greenButton`");
            }
            if secret("refreshToken") && text("tokenUrl").is_none() {
                errors.push("properties.tokenUrl", "is required to renew the token with the refresh token");
            }
        }
        Some("intervals") if s.strings("meters").unwrap_or_default().is_empty() => {
            errors.push("properties.meters", "name at least one meter with provider `intervals`");
        }
        _ => {}
    }
    crate::decode::check(resolved, &specs, errors)
}

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    let integration = crate::shared::rendered(integration, globals)?;
    let config = UtilityConfig::from_integration(&integration)?;
    let interval = config.interval;
    Ok(Box::new(Polled::new(UtilitySource::new(config, ctx), &integration, interval, interval)))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Utility data".into(),
        description: "Meter interval and billing data from a utility (Green Button, or a JSON intervals API).".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::ingress(properties(), check, build_ingress)],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    }
}
