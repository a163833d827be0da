//! Green Button (NAESB ESPI) Atom feeds: the entries a batch holds
//! (UsagePoint, MeterReading, ReadingType, IntervalBlock), tied together
//! by their `self` and `related` links, made into readings: each interval
//! of each block with the usage point it belongs to and the reading type
//! that says what it measures.
use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::XmlVersion;

/// What an ESPI ReadingType says about the values of its readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadingType {
    /// Values are multiplied by 10 to this power.
    pub power_of_ten: i32,
    /// ESPI's unit of measure code (72: Wh, 38: W, 169: therm, 42: m³).
    pub uom: u32,
    /// 1: delivered (forward), 19: received (reverse).
    pub flow_direction: u32,
    /// Seconds per interval.
    pub interval_length: Option<u64>,
}

/// One interval of one block.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The usage point's id (the segment after `UsagePoint/` in its links).
    pub usage_point: String,
    pub reading_type: ReadingType,
    /// The interval's start (s since the epoch) and length (s).
    pub start: i64,
    pub duration: i64,
    pub value: f64,
    /// In hundred-thousandths of the currency.
    pub cost: Option<f64>,
    pub quality: Option<String>,
}

/// The segment after `{what}/` in an ESPI link.
fn segment<'a>(href: &'a str, what: &str) -> Option<&'a str> {
    let rest = &href[href.find(&format!("/{what}/"))? + what.len() + 2..];
    Some(rest.split(['/', '?']).next().unwrap_or(rest)).filter(|s| !s.is_empty())
}

/// An entry as it is read: its links, what its content is, and the values found in it.
#[derive(Default)]
struct Entry {
    this: Option<String>,
    related: Vec<String>,
    kind: Option<String>,
    reading_type: ReadingType,
    readings: Vec<Interval>,
}

/// An IntervalReading as it is read.
#[derive(Default)]
struct Interval {
    start: i64,
    duration: i64,
    value: Option<f64>,
    cost: Option<f64>,
    quality: Option<String>,
}

/// Every interval reading of the feed, in the order of its blocks.
pub fn readings(xml: &str) -> Result<Vec<Reading>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut entries: Vec<Entry> = Vec::new();
    let mut entry: Option<Entry> = None;
    // Element names from the entry's content down to the text being read.
    let mut path: Vec<String> = Vec::new();
    let mut reading: Option<Interval> = None;
    let mut seen_feed = false;
    let mut depth = 0usize;
    loop {
        let event =
            reader.read_event().map_err(|e| format!("not an ESPI feed: {e} (at byte {})", reader.error_position()))?;
        match event {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "link" => {
                let attr = |name: &str| {
                    e.try_get_attribute(name)
                        .ok()
                        .flatten()
                        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
                };
                if let (Some(entry), Some(href)) = (entry.as_mut(), attr("href")) {
                    match attr("rel").as_deref() {
                        Some("self") => entry.this = Some(href),
                        Some("related") => entry.related.push(href),
                        _ => {}
                    }
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let opens = matches!(event, Event::Start(_));
                depth += usize::from(opens);
                let name = e.local_name().as_ref().to_owned();
                match name.as_str() {
                    "feed" => seen_feed = true,
                    "entry" => entry = Some(Entry::default()),
                    "UsagePoint" | "MeterReading" | "ReadingType" | "IntervalBlock" if path.is_empty() => {
                        if let Some(entry) = entry.as_mut() {
                            entry.kind = Some(name.clone());
                        }
                    }
                    "IntervalReading" if opens => reading = Some(Interval::default()),
                    _ => {}
                }
                if opens && entry.as_ref().is_some_and(|e| e.kind.is_some()) {
                    path.push(name);
                }
            }
            Event::Text(t) => {
                let (Some(entry), Some(leaf)) = (entry.as_mut(), path.last()) else { continue };
                let text = t.xml10_content();
                let text = text.trim();
                let number = || text.parse::<f64>().map_err(|_| format!("`{leaf}` is not a number: `{text}`"));
                let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
                match (entry.kind.as_deref(), parent, leaf.as_str()) {
                    (Some("ReadingType"), _, "powerOfTenMultiplier") => {
                        entry.reading_type.power_of_ten = number()? as i32
                    }
                    (Some("ReadingType"), _, "uom") => entry.reading_type.uom = number()? as u32,
                    (Some("ReadingType"), _, "flowDirection") => entry.reading_type.flow_direction = number()? as u32,
                    (Some("ReadingType"), _, "intervalLength") => {
                        entry.reading_type.interval_length = Some(number()? as u64)
                    }
                    (Some("IntervalBlock"), Some("timePeriod"), "start") => {
                        if let Some(r) = reading.as_mut() {
                            r.start = number()? as i64;
                        }
                    }
                    (Some("IntervalBlock"), Some("timePeriod"), "duration") => {
                        if let Some(r) = reading.as_mut() {
                            r.duration = number()? as i64;
                        }
                    }
                    (Some("IntervalBlock"), Some("IntervalReading"), "value") => {
                        if let Some(r) = reading.as_mut() {
                            r.value = Some(number()?);
                        }
                    }
                    (Some("IntervalBlock"), Some("IntervalReading"), "cost") => {
                        if let Some(r) = reading.as_mut() {
                            r.cost = Some(number()?);
                        }
                    }
                    (Some("IntervalBlock"), Some("ReadingQuality"), "quality") => {
                        if let Some(r) = reading.as_mut() {
                            r.quality = Some(text.to_owned());
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                let name = e.local_name();
                if name.as_ref() != "link" && entry.as_ref().is_some_and(|e| e.kind.is_some()) && !path.is_empty() {
                    path.pop();
                }
                match name.as_ref() {
                    "IntervalReading" => {
                        if let (Some(entry), Some(r)) = (entry.as_mut(), reading.take()) {
                            entry.readings.push(r);
                        }
                    }
                    "entry" => entries.extend(entry.take()),
                    _ => {}
                }
            }
            Event::Eof if depth > 0 => return Err("not an ESPI feed: it ends before its elements close".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_feed {
        return Err("not an ESPI feed: no Atom <feed>".into());
    }
    let self_of = |e: &Entry| e.this.clone().unwrap_or_default();
    let types: HashMap<String, ReadingType> = entries
        .iter()
        .filter(|e| e.kind.as_deref() == Some("ReadingType"))
        .filter_map(|e| Some((segment(&self_of(e), "ReadingType")?.to_owned(), e.reading_type.clone())))
        .collect();
    // A meter reading's self link → the reading type its related link names.
    let meter_types: HashMap<String, String> = entries
        .iter()
        .filter(|e| e.kind.as_deref() == Some("MeterReading"))
        .filter_map(|e| {
            let rt = e.related.iter().find_map(|r| segment(r, "ReadingType"))?;
            Some((segment(&self_of(e), "MeterReading")?.to_owned(), rt.to_owned()))
        })
        .collect();
    let mut out = Vec::new();
    for block in entries.iter().filter(|e| e.kind.as_deref() == Some("IntervalBlock")) {
        let href = self_of(block);
        let usage_point = segment(&href, "UsagePoint")
            .ok_or_else(|| format!("an IntervalBlock's link `{href}` names no UsagePoint"))?;
        let meter = segment(&href, "MeterReading")
            .ok_or_else(|| format!("an IntervalBlock's link `{href}` names no MeterReading"))?;
        let reading_type = meter_types.get(meter).and_then(|rt| types.get(rt)).ok_or_else(|| {
            format!("MeterReading {meter} (of UsagePoint {usage_point}) has no ReadingType in the feed")
        })?;
        for r in &block.readings {
            let Some(value) = r.value else { continue };
            out.push(Reading {
                usage_point: usage_point.to_owned(),
                reading_type: reading_type.clone(),
                start: r.start,
                duration: r.duration,
                value,
                cost: r.cost,
                quality: r.quality.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_their_usage_points_and_reading_types() {
        let href = "https://u.example/espi/1_1/resource/Subscription/5/UsagePoint/UP-2/MeterReading/7/IntervalBlock/1";
        assert_eq!(segment(href, "UsagePoint"), Some("UP-2"));
        assert_eq!(segment(href, "MeterReading"), Some("7"));
        assert_eq!(segment("https://u.example/ReadingType/3?x=1", "ReadingType"), Some("3"));
        assert_eq!(segment("https://u.example/UsagePoint", "UsagePoint"), None);
    }

    #[test]
    fn a_feed_that_is_not_espi_is_refused_with_where() {
        assert!(readings("<html><body>maintenance</body></html>").unwrap_err().contains("no Atom <feed>"));
        assert!(readings("<feed><entry>").unwrap_err().starts_with("not an ESPI feed"));
    }
}
