//! Decoding and mapping, the same for every ingress type: a received
//! message's payload becomes record drafts in the integration's `format`,
//! each naming its device by the external id `externalIdFrom` says where to
//! find, and the message's id (what deduplicates it) comes from the source or
//! from `messageIdFrom`. Declared once here: every ingress type lists these
//! properties beside its own connection properties.
use serde_json::{json, Map, Value};
use switchyard_core::spec::{PropertyKind as K, PropertySpec as P, Resolved};
use switchyard_core::{InboundMessage, Integration, RecordDraft, RecordKind, ResourceType, ValidationErrors};

use crate::egress::BuildError;
use crate::shared::Settings;

/// The most records one message may hold (as one API request).
pub const MAX_RECORDS: usize = 1000;

const FORMAT: &str = "format";
const EXTERNAL_ID_FROM: &str = "externalIdFrom";
const MESSAGE_ID_FROM: &str = "messageIdFrom";
const VALUE_POINTER: &str = "valuePointer";
const TIMESTAMP_POINTER: &str = "timestampPointer";
const KIND: &str = "kind";
const PLACE: &str = "place";
const EXPECTED_INTERVAL: &str = "expectedIntervalSeconds";
const RATE: &str = "rateLimitPerSecond";

/// The messages per second an ingress integration takes unless told otherwise.
pub const DEFAULT_RATE: f64 = 20.0;

/// The decoding, mapping and pacing properties of every ingress type.
pub fn properties() -> Vec<P> {
    vec![
        P::new(FORMAT, "Format", K::Enum)
            .options(&["json", "records", "senml", "raw"])
            .default(json!("json"))
            .describe(
            "json: an object whose fields become one value each; records: Switchyard's record JSON (one, an array, \
             or {\"records\": […]}); senml: SenML JSON (RFC 8428); raw: the whole payload as one value named after \
             the topic or event.",
        ),
        P::new(EXTERNAL_ID_FROM, "External id from", K::String).describe(
            "Where a message names its device, resolved through the integration's resource mappings: `topic:N` (the \
             topic's level N, from 0), `pointer:/json/pointer` (in the payload), `attribute:name` (a message \
             attribute or header, an MQTT 5 user property), or `bn` (SenML's base name). Not needed for `records`, \
             whose records name their devices.",
        ),
        P::new(MESSAGE_ID_FROM, "Message id from", K::String).describe(
            "The message's own id, which deduplicates a redelivered message: `pointer:/json/pointer` or \
             `attribute:name` (`attribute:correlationData` for MQTT 5 correlation data). Sources with ids of their \
             own (queue message ids, offsets) use those when this is blank.",
        ),
        P::new(VALUE_POINTER, "Value object pointer", K::String)
            .describe("json: a JSON pointer to the object whose fields are the values (the whole payload when blank)."),
        P::new(TIMESTAMP_POINTER, "Timestamp pointer", K::String).describe(
            "json: a JSON pointer to the sample time: ms or s since the epoch, or RFC 3339 (the receive time when \
             blank).",
        ),
        P::new(KIND, "Record kind", K::Enum)
            .options(&["value", "event", "alarm"])
            .default(json!("value"))
            .describe("The kind of the records json, senml and raw make."),
        P::new(PLACE, "Place for new devices", K::Resource).resource(ResourceType::Place).describe(
            "When set, an external id with no mapping gets a new device here, mapped to it; otherwise the message \
             is kept in the message log as unmapped until `replay-unmapped`.",
        ),
        P::new(EXPECTED_INTERVAL, "Expected interval (s)", K::Number)
            .range(1.0, 86_400.0 * 7.0)
            .describe("The status turns `silent` when no message came for this long."),
        P::new(RATE, "Rate limit (messages/s)", K::Number)
            .range(0.1, 100_000.0)
            .default(json!(DEFAULT_RATE))
            .describe("Messages taken per second at most; more wait at the source, unacknowledged: none is dropped."),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Records,
    Senml,
    Raw,
}

/// Where a value comes from in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    TopicLevel(usize),
    Pointer(String),
    Attribute(String),
    /// SenML's base name.
    BaseName,
}

impl Locator {
    /// `device`: the forms `externalIdFrom` takes (a topic level, SenML's base name) are allowed.
    fn parse(text: &str, device: bool) -> Result<Self, String> {
        let text = text.trim();
        if device && text == "bn" {
            return Ok(Self::BaseName);
        }
        let (form, rest) = text.split_once(':').ok_or_else(|| {
            if device {
                format!("`{text}` must be `topic:N`, `pointer:/path`, `attribute:name` or `bn`")
            } else {
                format!("`{text}` must be `pointer:/path` or `attribute:name`")
            }
        })?;
        match form {
            "topic" if device => {
                rest.parse().map(Self::TopicLevel).map_err(|_| format!("`{rest}` is not a topic level (0, 1, …)"))
            }
            "pointer" if rest.is_empty() || rest.starts_with('/') => Ok(Self::Pointer(rest.to_owned())),
            "pointer" => Err(format!("`{rest}` is not a JSON pointer (it starts with `/`)")),
            "attribute" if !rest.is_empty() => Ok(Self::Attribute(rest.to_owned())),
            _ => Err(format!("`{text}` is not a form this property takes")),
        }
    }

    /// The text found in the message (a number in the payload counts as its digits).
    fn find(&self, message: &InboundMessage, payload: Option<&Value>) -> Option<String> {
        let found = match self {
            Self::TopicLevel(n) => message.source_ref.split('/').nth(*n).map(str::to_owned),
            Self::Pointer(p) => payload.and_then(|v| v.pointer(p)).and_then(scalar_text),
            Self::Attribute(name) => message.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            Self::BaseName => None,
        };
        found.filter(|s| !s.is_empty())
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Why a message made no records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// An integration's decoding settings, read once per connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub format: Format,
    external_id: Option<Locator>,
    message_id: Option<Locator>,
    value_pointer: Option<String>,
    timestamp_pointer: Option<String>,
    kind: RecordKind,
    /// Messages per second at most.
    pub rate: f64,
    /// Seconds without a message after which the status is `silent`.
    pub expected_interval: Option<f64>,
    /// Where devices for unmapped external ids are created, if anywhere.
    pub place: Option<String>,
    /// Records with no id of their own are keyed by (device, property,
    /// timestamp): a polled source fetches what it stored before again.
    pub keyed: bool,
    /// The type of the devices made for unmapped external ids in `place`.
    pub device_type: &'static str,
}

impl Decoder {
    pub fn of(integration: &Integration) -> Result<Self, BuildError> {
        let s = Settings::of(integration)?;
        let mut decoder = Self::read(&s).map_err(BuildError::Config)?;
        decoder.keyed = crate::poll::is_polled(&integration.type_key);
        decoder.device_type = crate::poll::device_type(&integration.type_key);
        Ok(decoder)
    }

    /// A type that makes its own records (weather, utility data) declares
    /// none of the decoding properties but the Place and the rate: it
    /// hands over Switchyard's record JSON.
    fn read(s: &Settings<'_>) -> Result<Self, String> {
        let text = |name| match s.declares(name) {
            true => s.text(name).map_err(|e| e.to_string()).map(|t| t.map(str::trim).filter(|t| !t.is_empty())),
            false => Ok(None),
        };
        let own = if s.declares(FORMAT) { "json" } else { "records" };
        let format = match text(FORMAT)?.unwrap_or(own) {
            "records" => Format::Records,
            "senml" => Format::Senml,
            "raw" => Format::Raw,
            _ => Format::Json,
        };
        let external_id = text(EXTERNAL_ID_FROM)?
            .map(|t| Locator::parse(t, true).map_err(|e| format!("{EXTERNAL_ID_FROM}: {e}")))
            .transpose()?;
        if external_id == Some(Locator::BaseName) && format != Format::Senml {
            return Err(format!("{EXTERNAL_ID_FROM}: `bn` is for the senml format"));
        }
        if external_id.is_none() && format != Format::Records {
            return Err(format!("{EXTERNAL_ID_FROM}: is required for the {} format", text(FORMAT)?.unwrap_or("json")));
        }
        let message_id = text(MESSAGE_ID_FROM)?
            .map(|t| Locator::parse(t, false).map_err(|e| format!("{MESSAGE_ID_FROM}: {e}")))
            .transpose()?;
        let pointer = |name: &'static str| -> Result<Option<String>, String> {
            match text(name)? {
                Some(p) if !p.starts_with('/') => {
                    Err(format!("{name}: `{p}` is not a JSON pointer (it starts with `/`)"))
                }
                p => Ok(p.map(str::to_owned)),
            }
        };
        let number = |name| match s.declares(name) {
            true => s.number(name).map_err(|e| e.to_string()),
            false => Ok(None),
        };
        Ok(Self {
            format,
            external_id,
            message_id,
            value_pointer: pointer(VALUE_POINTER)?,
            timestamp_pointer: pointer(TIMESTAMP_POINTER)?,
            kind: text(KIND)?.and_then(RecordKind::parse).unwrap_or(RecordKind::Value),
            rate: number(RATE)?.filter(|r| *r > 0.0).unwrap_or(DEFAULT_RATE),
            expected_interval: number(EXPECTED_INTERVAL)?,
            place: text(PLACE)?.map(str::to_owned),
            keyed: false,
            device_type: "device",
        })
    }

    /// The id that deduplicates the message: `messageIdFrom` when set, else the source's own.
    pub fn message_id(&self, message: &InboundMessage) -> Option<String> {
        match &self.message_id {
            Some(locator) => {
                let payload = matches!(locator, Locator::Pointer(_))
                    .then(|| serde_json::from_slice::<Value>(&message.payload).ok())
                    .flatten();
                locator.find(message, payload.as_ref())
            }
            None => message.dedup_key.clone(),
        }
    }

    /// The message's record drafts; their external ids are resolved by the
    /// integration's mappings (the drafts name no integration: theirs is the source).
    pub fn decode(&self, message: &InboundMessage) -> Result<Vec<RecordDraft>, DecodeError> {
        let err = |m: String| DecodeError(m);
        let drafts = match self.format {
            Format::Raw => {
                let payload = raw_value(&message.payload);
                let property = message.source_ref.clone();
                let device = self.device(message, Some(&payload))?;
                vec![self.draft(device, property, message.received_at, payload)]
            }
            Format::Records => {
                let value = self.json(message)?;
                let items = match value {
                    Value::Array(items) => items,
                    Value::Object(mut o) if o.contains_key("records") && o.len() == 1 => match o.remove("records") {
                        Some(Value::Array(items)) => items,
                        _ => return Err(err("`records` must be an array".into())),
                    },
                    one @ Value::Object(_) => vec![one],
                    _ => return Err(err("must be a record, an array of records or {\"records\": […]}".into())),
                };
                let device = self.external_id.as_ref().and_then(|l| l.find(message, None));
                let mut drafts = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let mut draft: RecordDraft =
                        serde_json::from_value(item).map_err(|e| err(format!("records[{i}]: {e}")))?;
                    if draft.device_id.is_none() && draft.external_id.is_none() {
                        draft.external_id = device.clone();
                    }
                    drafts.push(draft);
                }
                drafts
            }
            Format::Json => {
                let value = self.json(message)?;
                let object = match &self.value_pointer {
                    Some(p) => value.pointer(p).ok_or_else(|| err(format!("nothing at {VALUE_POINTER} `{p}`")))?,
                    None => &value,
                };
                let Value::Object(fields) = object else {
                    return Err(err("the values must be a JSON object".into()));
                };
                let device = self.device(message, Some(&value))?;
                let at = self.timestamp(&value, message.received_at)?;
                let skip = self.used_fields(self.value_pointer.as_deref().unwrap_or(""));
                fields
                    .iter()
                    .filter(|(k, _)| !skip.contains(&k.as_str()))
                    .map(|(k, v)| self.draft(device.clone(), k.clone(), at, v.clone()))
                    .collect()
            }
            Format::Senml => self.senml(message)?,
        };
        if drafts.is_empty() {
            return Err(err("the message holds no values".into()));
        }
        if drafts.len() > MAX_RECORDS {
            return Err(err(format!("the message holds {} values, more than {MAX_RECORDS}", drafts.len())));
        }
        Ok(drafts)
    }

    fn json(&self, message: &InboundMessage) -> Result<Value, DecodeError> {
        serde_json::from_slice(&message.payload).map_err(|e| DecodeError(format!("not JSON: {e}")))
    }

    fn device(&self, message: &InboundMessage, payload: Option<&Value>) -> Result<String, DecodeError> {
        let locator = self.external_id.as_ref().ok_or_else(|| DecodeError(format!("{EXTERNAL_ID_FROM} is not set")))?;
        locator
            .find(message, payload)
            .ok_or_else(|| DecodeError(format!("no external id at {EXTERNAL_ID_FROM} `{}`", describe(locator))))
    }

    /// The object's own fields the settings read the device, the id or the
    /// time from: they are not values.
    fn used_fields<'a>(&'a self, object: &str) -> Vec<&'a str> {
        [&self.external_id, &self.message_id]
            .into_iter()
            .filter_map(|l| match l {
                Some(Locator::Pointer(p)) => Some(p.as_str()),
                _ => None,
            })
            .chain(self.timestamp_pointer.as_deref())
            .filter_map(|p| p.strip_prefix(object)?.strip_prefix('/').filter(|f| !f.contains('/')))
            .collect()
    }

    fn timestamp(&self, value: &Value, received_at: i64) -> Result<i64, DecodeError> {
        let Some(p) = &self.timestamp_pointer else { return Ok(received_at) };
        let found = value.pointer(p).ok_or_else(|| DecodeError(format!("no time at {TIMESTAMP_POINTER} `{p}`")))?;
        epoch_ms(found).ok_or_else(|| DecodeError(format!("{TIMESTAMP_POINTER} `{p}`: `{found}` is not a time")))
    }

    fn draft(&self, device: String, property: String, at: i64, payload: Value) -> RecordDraft {
        let mut draft = RecordDraft::new(self.kind, property, at, payload);
        draft.external_id = Some(device);
        draft
    }

    /// SenML JSON (RFC 8428): base name, time and unit carry to the entries
    /// after them; times are seconds, and those under 2^28 are relative to now.
    fn senml(&self, message: &InboundMessage) -> Result<Vec<RecordDraft>, DecodeError> {
        let err = |m: String| DecodeError(m);
        let Value::Array(entries) = self.json(message)? else {
            return Err(err("SenML must be an array of records".into()));
        };
        let (mut base_name, mut base_time, mut base_unit) = (String::new(), 0.0f64, None::<String>);
        let fixed = match &self.external_id {
            Some(Locator::BaseName) | None => None,
            Some(_) => Some(self.device(message, None)?),
        };
        let mut drafts = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let Value::Object(e) = entry else { return Err(err(format!("[{i}]: must be an object"))) };
            if let Some(bn) = e.get("bn") {
                base_name = bn.as_str().ok_or_else(|| err(format!("[{i}].bn: must be a string")))?.to_owned();
            }
            if let Some(bt) = e.get("bt") {
                base_time = bt.as_f64().ok_or_else(|| err(format!("[{i}].bt: must be a number")))?;
            }
            if let Some(bu) = e.get("bu") {
                base_unit = Some(bu.as_str().ok_or_else(|| err(format!("[{i}].bu: must be a string")))?.to_owned());
            }
            let Some(value) = senml_value(e).map_err(|m| err(format!("[{i}]: {m}")))? else { continue };
            let n = e.get("n").and_then(Value::as_str).unwrap_or("");
            let (device, property) = match &fixed {
                Some(d) => (d.clone(), format!("{base_name}{n}")),
                None if base_name.is_empty() => return Err(err(format!("[{i}]: no base name (bn) names the device"))),
                None => (base_name.trim_end_matches([':', '/']).to_owned(), n.to_owned()),
            };
            if property.is_empty() {
                return Err(err(format!("[{i}]: the record has no name")));
            }
            let t = base_time + e.get("t").and_then(Value::as_f64).unwrap_or(0.0);
            let at = if t.abs() < (1u64 << 28) as f64 {
                message.received_at + (t * 1000.0) as i64
            } else {
                (t * 1000.0) as i64
            };
            let mut draft = self.draft(device, property, at, value);
            draft.unit = e.get("u").and_then(Value::as_str).map(str::to_owned).or_else(|| base_unit.clone());
            drafts.push(draft);
        }
        Ok(drafts)
    }
}

/// An entry's value (`v`, `vs`, `vb` or `vd`); `None` for an entry that only sets base fields.
fn senml_value(e: &Map<String, Value>) -> Result<Option<Value>, String> {
    let found: Vec<(&str, &Value)> =
        ["v", "vs", "vb", "vd", "s"].iter().filter_map(|k| e.get(*k).map(|v| (*k, v))).collect();
    match found.as_slice() {
        [] => Ok(None),
        [("v" | "s", v)] if v.is_number() => Ok(Some((*v).clone())),
        [("vs" | "vd", v)] if v.is_string() => Ok(Some((*v).clone())),
        [("vb", v)] if v.is_boolean() => Ok(Some((*v).clone())),
        [(k, _)] => Err(format!("`{k}` has the wrong type")),
        _ => Err("more than one value".into()),
    }
}

fn describe(l: &Locator) -> String {
    match l {
        Locator::TopicLevel(n) => format!("topic:{n}"),
        Locator::Pointer(p) => format!("pointer:{p}"),
        Locator::Attribute(a) => format!("attribute:{a}"),
        Locator::BaseName => "bn".into(),
    }
}

/// A payload as one value: its JSON, else its text, else base64.
fn raw_value(payload: &[u8]) -> Value {
    use base64::Engine as _;
    if let Ok(v) = serde_json::from_slice::<Value>(payload) {
        return v;
    }
    match std::str::from_utf8(payload) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(payload)),
    }
}

/// ms since the epoch from ms or s since the epoch, or RFC 3339.
pub fn epoch_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let n = n.as_f64()?;
            // Under 1e11 it is seconds (1e11 ms is 1973; 1e11 s is the year 5138).
            let ms = if n.abs() < 1e11 { n * 1000.0 } else { n };
            (ms > 0.0).then_some(ms as i64)
        }
        Value::String(s) => {
            // humantime reads UTC; an offset (`+02:00`) is applied here.
            let s = s.trim();
            let (local, offset_ms) = match s.len().checked_sub(6).map(|i| s.split_at(i)) {
                Some((local, off)) if matches!(off.as_bytes()[0], b'+' | b'-') && off.as_bytes()[3] == b':' => {
                    let hours: i64 = off[1..3].parse().ok()?;
                    let minutes: i64 = off[4..6].parse().ok()?;
                    let sign = if off.starts_with('-') { -1 } else { 1 };
                    (local, sign * (hours * 60 + minutes) * 60_000)
                }
                _ => (s.strip_suffix('Z').or_else(|| s.strip_suffix('z'))?, 0),
            };
            let at = humantime::parse_rfc3339_weak(local).ok()?;
            let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64 - offset_ms;
            (ms > 0).then_some(ms)
        }
        _ => None,
    }
}

/// Every ingress type's `check` ends here: the decoding settings must make sense
/// together; their errors join the `errors` the type found itself.
pub fn check(resolved: &Resolved, specs: &[P], mut errors: ValidationErrors) -> Result<(), ValidationErrors> {
    let s = Settings::of_resolved(specs, resolved);
    if let Err(e) = Decoder::read(&s) {
        match e.split_once(": ") {
            Some((field, message)) if !field.contains(' ') => errors.push(format!("properties.{field}"), message),
            _ => errors.push("properties", e),
        }
    }
    errors.into_result()
}

#[cfg(test)]
mod tests;
