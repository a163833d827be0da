use std::sync::Arc;

use switchyard_engine::Engine;
use switchyard_store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { store: engine.store().clone(), engine }
    }
}
