use std::sync::Arc;

use switchyard_core::{ApiKey, Org};
use switchyard_engine::Engine;
use switchyard_store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub keys: KeyCache,
}

impl AppState {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { store: engine.store().clone(), engine, keys: KeyCache::default() }
    }
}

/// How long a node trusts a key it has looked up: revoking a key, or a
/// change to its organization, applies within this.
pub const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Keys authenticated in the last second, by hash, so a burst of requests
/// costs one database read, not one each. Bounded: cleared when full.
#[derive(Clone, Default)]
pub struct KeyCache(Arc<std::sync::Mutex<std::collections::HashMap<String, Cached>>>);

type Cached = (std::time::Instant, ApiKey, Org);

const KEYS_MAX: usize = 10_000;

impl KeyCache {
    pub fn get(&self, hash: &str) -> Option<(ApiKey, Org)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(hash).filter(|(at, _, _)| at.elapsed() < KEY_TTL).map(|(_, k, o)| (k.clone(), o.clone()))
    }

    pub fn put(&self, hash: String, key: &ApiKey, org: &Org) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= KEYS_MAX {
            map.clear();
        }
        map.insert(hash, (std::time::Instant::now(), key.clone(), org.clone()));
    }
}
