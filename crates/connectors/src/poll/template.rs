//! Templates rendered for each page of a poll.
use serde_json::{json, Value};
use switchyard_core::Metadata;

use super::Window;
use crate::egress::BuildError;

/// A template rendered for each page of a poll: the organization's
/// globals, the window (`since`, `until` in RFC 3339; `since_ms`,
/// `until_ms`, `since_s`, `until_s` as numbers) and the source's `cursor`.
pub struct WindowTemplate {
    env: minijinja::Environment<'static>,
    property: &'static str,
    globals: Value,
}

impl WindowTemplate {
    /// Strict: an unknown name fails the poll with the property's name.
    pub fn compile(property: &'static str, source: &str, globals: &Metadata) -> Result<Self, BuildError> {
        let mut env = switchyard_core::template::environment(minijinja::UndefinedBehavior::Strict);
        env.add_template_owned(property, source.to_owned())
            .map_err(|e| BuildError::Config(format!("{property}: {e}")))?;
        Ok(Self { env, property, globals: json!(globals) })
    }

    pub fn render(&self, window: Window, cursor: Option<&str>) -> Result<String, String> {
        let template = self.env.get_template(self.property).map_err(|e| e.to_string())?;
        let ctx = json!({
            "globals": self.globals,
            "since": crate::shared::rfc3339(window.since),
            "until": crate::shared::rfc3339(window.until),
            "since_ms": window.since,
            "until_ms": window.until,
            "since_s": window.since.div_euclid(1000),
            "until_s": window.until.div_euclid(1000),
            "cursor": cursor.unwrap_or(""),
        });
        switchyard_core::template::render(&template, ctx)
            .map_err(|e| format!("{} could not be rendered: {e}", self.property))
    }
}
