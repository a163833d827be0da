//! Resource paths: `/` (the root), `/places/{placeId}`, `/places/{placeId}/devices/{deviceId}`.
use std::fmt;

use crate::{DeviceId, PlaceId};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourcePath {
    Root,
    Place(PlaceId),
    Device(PlaceId, DeviceId),
}

/// The most resource paths one list (an integration's, a trigger's scope) holds.
pub const PATHS_MAX: usize = 100;

impl ResourcePath {
    pub const FORMS: &'static str = "`/`, `/places/{placeId}` or `/places/{placeId}/devices/{deviceId}`";

    /// A list of paths to Places or devices (not the root), each with its
    /// field (`scope[2]`); bad ones are pushed to `errors` with `root_hint`
    /// saying what to do instead of naming the root.
    pub fn parse_list(
        field: &str,
        raw: &[String],
        root_hint: &str,
        errors: &mut crate::ValidationErrors,
    ) -> Vec<(String, ResourcePath)> {
        if raw.len() > PATHS_MAX {
            errors.push(field, format!("must have at most {PATHS_MAX} paths"));
            return vec![];
        }
        let mut out = Vec::with_capacity(raw.len());
        for (i, p) in raw.iter().enumerate() {
            let at = format!("{field}[{i}]");
            match ResourcePath::parse(p) {
                Ok(ResourcePath::Root) => errors.push(at, format!("must name a Place or a device{root_hint}")),
                Ok(path) => out.push((at, path)),
                Err(e) => errors.push(at, e),
            }
        }
        out
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a resource path; expected {}", Self::FORMS);
        let parts: Vec<&str> = s.trim_end_matches('/').split('/').collect();
        match parts.as_slice() {
            [""] => Ok(Self::Root),
            ["", "places", p] => Ok(Self::Place(PlaceId::parse(p).map_err(|e| format!("{}: {e}", bad()))?)),
            ["", "places", p, "devices", d] => Ok(Self::Device(
                PlaceId::parse(p).map_err(|e| format!("{}: {e}", bad()))?,
                DeviceId::parse(d).map_err(|e| format!("{}: {e}", bad()))?,
            )),
            _ => Err(bad()),
        }
    }

    pub fn resource_type(&self) -> Option<crate::ResourceType> {
        match self {
            Self::Root => None,
            Self::Place(_) => Some(crate::ResourceType::Place),
            Self::Device(..) => Some(crate::ResourceType::Device),
        }
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("/"),
            Self::Place(p) => write!(f, "/places/{p}"),
            Self::Device(p, d) => write!(f, "/places/{p}/devices/{d}"),
        }
    }
}

/// Serde helper: write a value with its `Display` form (paths are strings on the wire).
pub fn serialize_display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let p = PlaceId::new();
        let d = DeviceId::new();
        for path in [ResourcePath::Root, ResourcePath::Place(p.clone()), ResourcePath::Device(p, d)] {
            assert_eq!(ResourcePath::parse(&path.to_string()).unwrap(), path);
        }
    }

    #[test]
    fn bad_paths_say_what_is_expected() {
        for bad in ["places", "/things/x", "/places/dev_01j00000000000000000000000", "/places/plc_1/devices"] {
            let err = ResourcePath::parse(bad).unwrap_err();
            assert!(err.contains("expected"), "{err}");
        }
    }
}
