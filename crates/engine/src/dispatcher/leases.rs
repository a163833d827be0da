//! The leases this node holds, kept alive while it holds them.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_core::{now_ms, DeliveryId};
use switchyard_store::{Claimed, Store};

use super::lock;

/// The leases this node holds on deliveries queued in its workers or being
/// sent, kept alive by the claim loop: a delivery that waits in a queue
/// longer than a lease lasts is not claimed a second time. One whose renewal
/// the store refuses (its lease ran out and it was claimed again, here or on
/// another node) is dropped where it waits.
#[derive(Clone, Default)]
pub(crate) struct Leases(Arc<Mutex<HashMap<DeliveryId, i64>>>);

impl Leases {
    pub(super) fn hold(&self, d: &Claimed) {
        lock(&self.0).insert(d.id.clone(), d.lease_until);
    }

    pub(super) fn holds(&self, id: &DeliveryId) -> bool {
        lock(&self.0).contains_key(id)
    }

    pub(super) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a DeliveryId>) {
        let mut map = lock(&self.0);
        for id in ids {
            map.remove(id);
        }
    }

    /// Renews every lease with less than half of `lease` left.
    pub(super) async fn renew(&self, store: &dyn Store, lease: Duration) {
        let now = now_ms();
        let lease = lease.as_millis() as i64;
        let due: Vec<(DeliveryId, i64)> = lock(&self.0)
            .iter()
            .filter(|(_, until)| **until - now < lease / 2)
            .map(|(id, u)| (id.clone(), *u))
            .collect();
        if due.is_empty() {
            return;
        }
        let until = now + lease;
        let renewed = match store.renew_leases(&due, until).await {
            Ok(renewed) => renewed.into_iter().collect::<std::collections::HashSet<_>>(),
            Err(e) => {
                tracing::error!(error = %e, "renewing leases failed; retrying at the next renewal");
                return;
            }
        };
        let mut map = lock(&self.0);
        let mut lost = 0;
        for (id, held) in &due {
            // Sent meanwhile (gone), or renewed already: nothing to do.
            let Some(current) = map.get_mut(id).filter(|c| **c == *held) else { continue };
            if renewed.contains(id) {
                *current = until;
            } else {
                map.remove(id);
                lost += 1;
            }
        }
        if lost > 0 {
            tracing::warn!(lost, "leases ran out while their deliveries were queued; the outbox has them again");
        }
    }
}
