//! The resource lookup notification templates use: a record's device and
//! its Place, from the store.
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use switchyard_core::{DeviceId, OrgId};
use switchyard_store::Store;

pub(crate) struct StoreResources(pub Arc<dyn Store>);

#[async_trait]
impl switchyard_connectors::Resources for StoreResources {
    async fn describe(&self, org: &OrgId, device: &DeviceId) -> Value {
        let mut out = Map::new();
        let Ok(Some(d)) = self.0.get_device(org, device).await else { return Value::Object(out) };
        if let Ok(Some(p)) = self.0.get_place(org, &d.place_id).await {
            out.insert("place".into(), json!({"id": p.id, "name": p.name, "metadata": p.metadata}));
        }
        out.insert(
            "device".into(),
            json!({"id": d.id, "name": d.name, "deviceType": d.device_type, "externalIds": d.external_ids,
                   "metadata": d.metadata}),
        );
        Value::Object(out)
    }

    async fn place(&self, org: &OrgId, place: &switchyard_core::PlaceId) -> Option<switchyard_core::Place> {
        self.0.get_place(org, place).await.ok().flatten()
    }
}
