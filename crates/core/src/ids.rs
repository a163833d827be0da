//! Prefixed, time-ordered ids (`int_01j…`): one generic type, one marker per kind.
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};

/// What distinguishes one kind of id from another: its prefix and schema name.
pub trait IdKind: 'static {
    const PREFIX: &'static str;
    const NAME: &'static str;
}

/// An id whose prefix says what it names. Its body is a lower-case ULID, so
/// ids sort by creation time, which is what cursor pagination relies on.
pub struct Id<K: IdKind>(String, PhantomData<fn() -> K>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id (expected `{prefix}` followed by 26 letters and digits)")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
}

impl<K: IdKind> Id<K> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(format!("{}{}", K::PREFIX, next_ulid().to_string().to_ascii_lowercase()), PhantomData)
    }

    /// The least id of this kind made at `ms` (ms since the epoch): every id
    /// made before then sorts below it, so a time bound is a range of ids.
    pub fn first_at(ms: i64) -> String {
        let at = ulid::Ulid::from_parts(ms.max(0) as u64, 0);
        format!("{}{}", K::PREFIX, at.to_string().to_ascii_lowercase())
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let err = || IdError { kind: K::NAME, prefix: K::PREFIX };
        let body = s.strip_prefix(K::PREFIX).ok_or_else(err)?;
        if body.len() != 26 || !body.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
            return Err(err());
        }
        Ok(Self(s.to_owned(), PhantomData))
    }

    /// For values read back from the store, which only ever holds parsed ids.
    pub fn from_stored(s: String) -> Self {
        Self(s, PhantomData)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<K: IdKind> Clone for Id<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}
impl<K: IdKind> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K: IdKind> Eq for Id<K> {}
impl<K: IdKind> std::hash::Hash for Id<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}
impl<K: IdKind> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: IdKind> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}
impl<K: IdKind> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl<K: IdKind> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl<K: IdKind> std::str::FromStr for Id<K> {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl<K: IdKind> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de, K: IdKind> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
impl<K: IdKind> utoipa::PartialSchema for Id<K> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^{}[0-9a-z]{{26}}$", K::PREFIX)))
            .description(Some(format!("{} id, prefixed `{}`", K::NAME, K::PREFIX)))
            .into()
    }
}
impl<K: IdKind> utoipa::ToSchema for Id<K> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("{}Id", K::NAME))
    }
}

/// ULIDs from one process are strictly increasing, even within a millisecond,
/// so ids created one after another sort in that order.
fn next_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut guard = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    guard.get_or_insert_with(ulid::Generator::new).generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! id_kinds {
    ($($kind:ident, $alias:ident, $prefix:literal, $name:literal;)*) => {$(
        #[derive(Debug)]
        pub enum $kind {}
        impl IdKind for $kind {
            const PREFIX: &'static str = $prefix;
            const NAME: &'static str = $name;
        }
        pub type $alias = Id<$kind>;
    )*};
}

id_kinds! {
    OrgKind, OrgId, "org_", "Organization";
    ApiKeyKind, ApiKeyId, "key_", "ApiKey";
    PlaceKind, PlaceId, "plc_", "Place";
    DeviceKind, DeviceId, "dev_", "Device";
    IntegrationKind, IntegrationId, "int_", "Integration";
    MappingKind, MappingId, "rm_", "ResourceMapping";
    RecordKindId, RecordId, "rec_", "Record";
    TriggerKind, TriggerId, "trg_", "Trigger";
    DeliveryKind, DeliveryId, "dlv_", "Delivery";
    ActionKind, ActionId, "act_", "Action";
    RecipientKindId, RecipientId, "rcp_", "Recipient";
    MessageKind, MessageId, "msg_", "Message";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_prefixes() {
        let id = IntegrationId::new();
        assert!(id.as_str().starts_with("int_"));
        assert_eq!(IntegrationId::parse(id.as_str()).unwrap(), id);
        assert!(IntegrationId::parse(&id.as_str().replace("int_", "dev_")).is_err());
        assert!(IntegrationId::parse("int_short").is_err());
        assert!(IntegrationId::parse("int_01J0000000000000000000000!").is_err());
    }

    #[test]
    fn ids_sort_by_creation_order_even_within_a_millisecond() {
        let ids: Vec<PlaceId> = (0..1000).map(|_| PlaceId::new()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
