//! WEATHER (INGRESS): observations and forecasts for a Place, from the
//! Open-Meteo API (`/v1/forecast` with `current` and `hourly`, `/v1/archive`
//! for backfills). The base URLs are settings, so a self-hosted instance, a
//! commercial one (with its API key) or a local server in tests is used the
//! same way. Each poll stores the current observation of every variable
//! (property = the variable) and the hourly forecast (property =
//! `{variable}_forecast`, tagged with the hour it was issued), so a
//! forecast never overwrites an observation; a backfill stores the
//! archive's hourly observations. Records land on a `weather` device in the
//! Place, made and mapped at the first poll.
mod source;

use serde_json::json;
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{Globals, Integration, ResourceType, ValidationErrors};

use crate::egress::{BuildError, EgressContext};
use crate::ingress::Ingress;
use crate::poll::Polled;
use crate::shared::Settings;
use crate::{Category, ConnectorType, DirectionSupport};

pub use source::{WeatherConfig, WeatherSource};

pub const KEY: &str = "WEATHER";

/// What solar and load forecasting use, in Open-Meteo's names.
pub const DEFAULT_VARIABLES: [&str; 6] =
    ["temperature_2m", "relative_humidity_2m", "wind_speed_10m", "cloud_cover", "precipitation", "shortwave_radiation"];

pub fn properties() -> Vec<P> {
    vec![
        P::new("place", "Place", K::Resource).resource(ResourceType::Place).required().describe(
            "Whose location (latitude, longitude) is fetched for; the records land on a `weather` device in it, \
             made and mapped at the first poll.",
        ),
        P::new("variables", "Variables", K::List).default(json!(DEFAULT_VARIABLES)).describe(
            "Open-Meteo's hourly variables (`temperature_2m`, `shortwave_radiation`, …), each a property with its \
             unit.",
        ),
        P::new("forecastHours", "Forecast hours", K::Number)
            .range(0.0, 384.0)
            .default(json!(24))
            .describe("How many hours of forecast each poll stores (as `{variable}_forecast`); 0 stores none."),
        crate::poll::interval_property(900.0, 60.0),
        P::new("apiUrl", "Forecast API URL", K::Url)
            .default(json!("https://api.open-meteo.com"))
            .describe("Open-Meteo's forecast API, or a self-hosted or commercial instance's."),
        P::new("archiveUrl", "Archive API URL", K::Url)
            .default(json!("https://archive-api.open-meteo.com"))
            .describe("Open-Meteo's historical API, which backfills read."),
        P::new("apiKey", "API key", K::Secret)
            .templated()
            .describe("A commercial instance's key, sent as `apikey`; none for the free API."),
        P::new("timeoutSeconds", "Timeout (s)", K::Number).range(1.0, 300.0).default(json!(30)),
    ]
}

fn check(resolved: &Resolved) -> Result<(), ValidationErrors> {
    let specs = properties();
    let s = Settings::of_resolved(&specs, resolved);
    let mut errors = ValidationErrors::default();
    let variables = s.strings("variables").unwrap_or_default();
    if variables.is_empty() {
        errors.push("properties.variables", "name at least one variable");
    }
    for (i, v) in variables.iter().enumerate() {
        if !v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') || v.len() > 64 {
            errors.push(format!("properties.variables[{i}]"), "must be an Open-Meteo variable name (a-z, 0-9, _)");
        }
    }
    errors.into_result()
}

fn build_ingress(
    integration: &Integration,
    globals: &Globals,
    ctx: &EgressContext,
) -> Result<Box<dyn Ingress>, BuildError> {
    let integration = crate::shared::rendered(integration, globals)?;
    let config = WeatherConfig::from_integration(&integration)?;
    let interval = config.interval;
    let source = WeatherSource::new(config, &integration, ctx)?;
    Ok(Box::new(Polled::new(source, &integration, interval, interval)))
}

pub fn connector_type() -> ConnectorType {
    ConnectorType {
        key: KEY.into(),
        name: "Weather".into(),
        description: "Weather observations and forecasts for a Place, from Open-Meteo.".into(),
        category: Category::Standard,
        directions: vec![DirectionSupport::ingress(properties(), check, build_ingress)],
        message: crate::Message::Record,
        recipients: None,
        send_code: None,
    }
}
