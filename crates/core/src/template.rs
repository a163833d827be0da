//! Templates (MiniJinja) with bounds: every environment runs on fuel (a
//! budget of instructions) and every rendering writes into a capped buffer,
//! so a short template with nested loops fails with a reason instead of
//! rendering hundreds of megabytes. Templated properties are checked
//! against the same bounds at create, with a sample record.
use std::io;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

/// Instructions one rendering may run: far more than any template that
/// formats a record (a few hundred), far fewer than a runaway loop.
pub const FUEL: u64 = 200_000;

/// The most one rendering may write, in bytes (the API's default body limit).
pub const OUTPUT_MAX: usize = 1024 * 1024;

/// An environment with the bounds set; `undefined` says what an unknown name does.
pub fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(FUEL));
    env
}

/// Renders within the bounds; an error says which bound was hit, or what failed.
pub fn render<S: Serialize>(template: &minijinja::Template<'_, '_>, ctx: S) -> Result<String, String> {
    let mut out = Capped(Vec::new());
    let rendered = template.render_captured_to(ctx, &mut out).map(drop);
    match rendered {
        Ok(()) => String::from_utf8(out.0).map_err(|_| "rendered text that is not UTF-8".to_owned()),
        Err(e) => Err(explain(&e)),
    }
}

fn explain(e: &minijinja::Error) -> String {
    match e.kind() {
        ErrorKind::OutOfFuel => {
            format!("does more work than a template may ({FUEL} steps); simplify its loops")
        }
        ErrorKind::WriteFailure => format!("renders more than {OUTPUT_MAX} bytes"),
        _ => e.to_string(),
    }
}

/// Checks a template's source at create: it compiles, and rendered for a
/// sample record it stays within the bounds. Unknown names are not errors
/// here (globals may be set later); only the bounds and the syntax are.
pub fn check(source: &str, sample: &impl Serialize) -> Result<(), String> {
    let mut env = environment(UndefinedBehavior::Chainable);
    env.add_template("t", source)
        .map_err(|e| format!("is not a valid template: {}", e.detail().unwrap_or("syntax error")))?;
    let template = env.get_template("t").map_err(|e| e.to_string())?;
    let mut out = Capped(Vec::new());
    let rendered = template.render_captured_to(sample, &mut out).map(drop);
    match rendered {
        Err(e) if matches!(e.kind(), ErrorKind::OutOfFuel | ErrorKind::WriteFailure) => Err(explain(&e)),
        _ => Ok(()),
    }
}

/// What templates are checked against at create: a sample record, and the
/// names notification templates also see, empty.
pub fn sample_context() -> serde_json::Value {
    let record = crate::Record::new(
        crate::RecordKind::Value,
        crate::DeviceId::new(),
        "power".into(),
        1_700_000_000_000,
        serde_json::json!(12.5),
    );
    serde_json::json!({"record": record, "globals": {}, "device": {}, "place": {}, "published": {}})
}

/// A buffer that refuses to grow past [`OUTPUT_MAX`].
struct Capped(Vec<u8>);

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > OUTPUT_MAX {
            return Err(io::Error::other("output limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({"record": {"property": "power", "payload": 12.5}})
    }

    #[test]
    fn ordinary_templates_render_and_pass() {
        let env = {
            let mut env = environment(UndefinedBehavior::Strict);
            env.add_template("t", "{{ record.property }}={{ record.payload }}").unwrap();
            env
        };
        assert_eq!(render(&env.get_template("t").unwrap(), sample()).unwrap(), "power=12.5");
        assert_eq!(check("{% for k in record %}{{ k }}{% endfor %}{{ globals.site }}", &sample()), Ok(()));
    }

    #[test]
    fn runaway_templates_fail_with_the_bound_they_hit() {
        let loops = "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}";
        assert!(check(loops, &sample()).unwrap_err().contains("more work"), "nested loops run out of fuel");
        let big = "{{ 'x' * 50000000 }}";
        assert!(check(big, &sample()).unwrap_err().contains("more than"), "output is capped");
        assert!(check("{% for %}", &sample()).unwrap_err().starts_with("is not a valid template"));
        let mut env = environment(UndefinedBehavior::Lenient);
        env.add_template("t", loops).unwrap();
        assert!(render(&env.get_template("t").unwrap(), sample()).unwrap_err().contains("more work"));
    }
}
