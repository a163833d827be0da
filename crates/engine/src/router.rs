//! Routing: which egress integrations a record goes to. Triggers are indexed
//! per organization by kind and exact object, so a record is checked only
//! against the triggers that can match it (plus glob and any-object ones),
//! never against every trigger. The same cache keeps what resolving a
//! record's device reads: device ancestries, integrations' directions and
//! resource mappings (a message stream repeats the same few external ids).
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_core::{
    glob_match, DeviceId, Direction, IntegrationId, OrgId, PlaceId, Record, RecordKind, ResourcePath, Trigger,
};
use switchyard_store::{IntegrationFilter, PageRequest, Store, StoreError};

/// How long a node trusts its copy of an organization's triggers; changes
/// made on this node invalidate it at once, changes on other nodes within this.
const ROUTES_TTL: Duration = Duration::from_secs(2);

struct Compiled {
    integration: IntegrationId,
    places: Vec<PlaceId>,
    devices: Vec<DeviceId>,
}

impl Compiled {
    fn covers(&self, device: &DeviceId, ancestry: &[PlaceId]) -> bool {
        (self.places.is_empty() && self.devices.is_empty())
            || self.devices.contains(device)
            || self.places.iter().any(|p| ancestry.contains(p))
    }
}

#[derive(Default)]
struct KindIndex {
    exact: HashMap<String, Vec<usize>>,
    globs: Vec<(String, usize)>,
    any: Vec<usize>,
}

/// One organization's triggers, indexed.
#[derive(Default)]
pub struct RouteTable {
    triggers: Vec<Compiled>,
    kinds: HashMap<RecordKind, KindIndex>,
    /// Integrations with an objects list (cloud types): a record must match
    /// one of its patterns as well as a trigger.
    objects: HashMap<IntegrationId, Vec<String>>,
}

impl RouteTable {
    /// `objects`: per integration, the objects list that narrows its triggers.
    pub fn build(triggers: &[Trigger], objects: HashMap<IntegrationId, Vec<String>>) -> Self {
        let mut table = RouteTable { objects, ..RouteTable::default() };
        for t in triggers.iter().filter(|t| t.active) {
            let i = table.triggers.len();
            let mut places = Vec::new();
            let mut devices = Vec::new();
            for path in &t.scope {
                match path {
                    ResourcePath::Place(p) => places.push(p.clone()),
                    ResourcePath::Device(_, d) => devices.push(d.clone()),
                    ResourcePath::Root => {}
                }
            }
            table.triggers.push(Compiled { integration: t.integration_id.clone(), places, devices });
            for kind in &t.kinds {
                let index = table.kinds.entry(*kind).or_default();
                if t.objects.is_empty() || t.objects.iter().any(|o| o == "*") {
                    index.any.push(i);
                    continue;
                }
                for pattern in &t.objects {
                    if pattern.contains('*') {
                        index.globs.push((pattern.clone(), i));
                    } else {
                        index.exact.entry(pattern.clone()).or_default().push(i);
                    }
                }
            }
        }
        table
    }

    /// The integrations a record goes to, each once, in trigger order.
    pub fn route(&self, record: &Record, ancestry: &[PlaceId]) -> Vec<IntegrationId> {
        let Some(index) = self.kinds.get(&record.kind) else { return vec![] };
        let candidates = index
            .exact
            .get(&record.property)
            .into_iter()
            .flatten()
            .chain(index.any.iter())
            .chain(index.globs.iter().filter(|(p, _)| glob_match(p, &record.property)).map(|(_, i)| i));
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for &i in candidates {
            let t = &self.triggers[i];
            let wanted = |patterns: &Vec<String>| patterns.iter().any(|p| glob_match(p, &record.property));
            if t.covers(&record.device_id, ancestry)
                && self.objects.get(&t.integration).is_none_or(wanted)
                && seen.insert(&t.integration)
            {
                out.push(t.integration.clone());
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }
}

/// Entries one cache holds at most: past it, expired ones go, then all (a
/// stream of ever new external ids must not grow memory without bound).
const CACHE_MAX: usize = 100_000;

/// Values kept for [`ROUTES_TTL`].
struct TtlCache<K, V>(Mutex<HashMap<K, (Instant, Arc<V>)>>);

impl<K: std::hash::Hash + Eq, V> TtlCache<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, Arc<V>)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn get(&self, key: &K) -> Option<Arc<V>> {
        self.lock().get(key).filter(|(at, _)| at.elapsed() < ROUTES_TTL).map(|(_, v)| v.clone())
    }
    fn put(&self, key: K, value: V) -> Arc<V> {
        let value = Arc::new(value);
        let mut map = self.lock();
        if map.len() >= CACHE_MAX {
            map.retain(|_, (at, _)| at.elapsed() < ROUTES_TTL);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value.clone()));
        value
    }
}

/// Route tables, device ancestries, integrations' directions and resource
/// mappings, cached per organization.
pub struct Router {
    store: Arc<dyn Store>,
    tables: TtlCache<OrgId, RouteTable>,
    ancestry: TtlCache<(OrgId, DeviceId), Vec<PlaceId>>,
    directions: TtlCache<(OrgId, IntegrationId), Option<Direction>>,
    mappings: TtlCache<(OrgId, IntegrationId, String), Option<ResourcePath>>,
}

impl Router {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            tables: TtlCache::new(),
            ancestry: TtlCache::new(),
            directions: TtlCache::new(),
            mappings: TtlCache::new(),
        }
    }

    /// Forget what is cached for an organization (its triggers, integrations,
    /// mappings, Places or devices changed).
    pub fn invalidate(&self, org: &OrgId) {
        self.tables.lock().remove(org);
        self.ancestry.lock().retain(|(o, _), _| o != org);
        self.directions.lock().retain(|(o, _), _| o != org);
        self.mappings.lock().retain(|(o, _, _), _| o != org);
    }

    /// The integration's direction (`None`: no such integration).
    pub async fn direction(&self, org: &OrgId, id: &IntegrationId) -> Result<Option<Direction>, StoreError> {
        let key = (org.clone(), id.clone());
        match self.directions.get(&key) {
            Some(d) => Ok(*d),
            None => {
                let found = self.store.get_integration(org, id).await?.map(|i| i.direction);
                Ok(*self.directions.put(key, found))
            }
        }
    }

    /// What the integration's resource mapping for `external` names, if any.
    pub async fn mapping(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        external: &str,
    ) -> Result<Arc<Option<ResourcePath>>, StoreError> {
        let key = (org.clone(), integration.clone(), external.to_owned());
        match self.mappings.get(&key) {
            Some(found) => Ok(found),
            None => {
                let found = self.store.find_mapping(org, integration, external).await?.map(|m| m.resource_path);
                Ok(self.mappings.put(key, found))
            }
        }
    }

    pub async fn table(&self, org: &OrgId) -> Result<Arc<RouteTable>, StoreError> {
        match self.tables.get(org) {
            Some(table) => Ok(table),
            None => {
                let triggers = self.store.routing_triggers(org).await?;
                let objects = self.objects(org).await?;
                Ok(self.tables.put(org.clone(), RouteTable::build(&triggers, objects)))
            }
        }
    }

    /// The objects lists of the organization's enabled egress integrations.
    pub async fn objects(&self, org: &OrgId) -> Result<HashMap<IntegrationId, Vec<String>>, StoreError> {
        let filter =
            IntegrationFilter { direction: Some(Direction::Egress), enabled: Some(true), ..Default::default() };
        let mut page = PageRequest { limit: 500, after: None };
        let mut out = HashMap::new();
        loop {
            let found = self.store.list_integrations(org, &filter, &page).await?;
            out.extend(
                found.items.iter().filter_map(|i| Some((i.id.clone(), switchyard_connectors::shared::objects(i)?))),
            );
            match found.next_cursor {
                Some(c) => page.after = Some(c),
                None => return Ok(out),
            }
        }
    }

    pub async fn ancestry(&self, org: &OrgId, device: &DeviceId) -> Result<Arc<Vec<PlaceId>>, StoreError> {
        let key = (org.clone(), device.clone());
        match self.ancestry.get(&key) {
            Some(places) => Ok(places),
            None => Ok(self.ancestry.put(key, self.store.device_places(org, device).await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{now_ms, TriggerId};

    fn record(kind: RecordKind, property: &str, device: &DeviceId) -> Record {
        serde_json::from_value(serde_json::json!({
            "kind": kind, "deviceId": device, "property": property, "timestamp": 1, "payload": 1, "receivedAt": 1
        }))
        .unwrap()
    }

    fn trigger(
        integration: &IntegrationId,
        kinds: &[RecordKind],
        objects: &[&str],
        scope: Vec<ResourcePath>,
    ) -> Trigger {
        Trigger {
            id: TriggerId::new(),
            integration_id: integration.clone(),
            name: "t".into(),
            kinds: kinds.to_vec(),
            objects: objects.iter().map(|s| s.to_string()).collect(),
            scope,
            active: true,
            created_at: now_ms(),
            updated_at: now_ms(),
        }
    }

    #[test]
    fn kinds_objects_and_scope_decide() {
        let (a, b, c) = (IntegrationId::new(), IntegrationId::new(), IntegrationId::new());
        let (site, other) = (PlaceId::new(), PlaceId::new());
        let (d1, d2) = (DeviceId::new(), DeviceId::new());
        let table = RouteTable::build(
            &[
                trigger(&a, &[RecordKind::Value], &["power"], vec![]),
                trigger(
                    &b,
                    &[RecordKind::Value, RecordKind::Alarm],
                    &["temp_*"],
                    vec![ResourcePath::Place(site.clone())],
                ),
                trigger(&c, &[RecordKind::Event], &[], vec![ResourcePath::Device(other.clone(), d2.clone())]),
                trigger(&a, &[RecordKind::Value], &["pow*"], vec![]),
            ],
            HashMap::new(),
        );
        let in_site = [PlaceId::new(), site.clone()];
        assert_eq!(
            table.route(&record(RecordKind::Value, "power", &d1), &in_site),
            vec![a.clone()],
            "once, though two triggers match"
        );
        assert_eq!(
            table.route(&record(RecordKind::Value, "temp_in", &d1), &in_site),
            vec![b.clone()],
            "subtree of site"
        );
        assert!(
            table.route(&record(RecordKind::Value, "temp_in", &d1), std::slice::from_ref(&other)).is_empty(),
            "outside the scope"
        );
        assert!(table.route(&record(RecordKind::Event, "power", &d1), &in_site).is_empty(), "wrong kind");
        assert_eq!(
            table.route(&record(RecordKind::Event, "door", &d2), &[other]),
            vec![c.clone()],
            "any object, one device"
        );
        assert!(table.route(&record(RecordKind::Event, "door", &d1), &in_site).is_empty());
    }

    #[test]
    fn an_objects_list_narrows_the_triggers_of_its_integration() {
        let (a, b) = (IntegrationId::new(), IntegrationId::new());
        let d = DeviceId::new();
        let objects = HashMap::from([(a.clone(), vec!["adc_*".to_owned(), "power".to_owned()])]);
        let table = RouteTable::build(
            &[trigger(&a, &[RecordKind::Value], &[], vec![]), trigger(&b, &[RecordKind::Value], &[], vec![])],
            objects,
        );
        assert_eq!(table.route(&record(RecordKind::Value, "adc_vbterm", &d), &[]), vec![a.clone(), b.clone()]);
        assert_eq!(table.route(&record(RecordKind::Value, "power", &d), &[]), vec![a.clone(), b.clone()]);
        assert_eq!(table.route(&record(RecordKind::Value, "temp", &d), &[]), vec![b.clone()], "not in a's objects");
    }

    #[test]
    fn inactive_triggers_route_nothing() {
        let a = IntegrationId::new();
        let mut t = trigger(&a, &[RecordKind::Value], &[], vec![]);
        t.active = false;
        assert!(RouteTable::build(&[t], HashMap::new()).is_empty());
    }
}
