//! Leases of what one node runs, and the fence a writer round checks.
use switchyard_store::{Batch, Fence, NewRecord};

use super::{record, with_a_webhook};
use crate::Harness;

pub async fn a_lease_has_one_holder_and_a_takeover_fences_the_old_one(h: Harness) {
    let names = vec!["ingress:int_a".to_owned(), "ingress:int_b".to_owned()];
    let t0 = 1_000_000;
    let held = h.store.take_leases(&names, "node-1", t0, t0 + 10_000).await.unwrap();
    assert_eq!(held, [("ingress:int_a".to_owned(), 1), ("ingress:int_b".to_owned(), 1)]);
    assert!(h.store.take_leases(&names, "node-2", t0 + 5_000, t0 + 15_000).await.unwrap().is_empty(), "held");
    let renewed = h.store.take_leases(&names[..1], "node-1", t0 + 6_000, t0 + 16_000).await.unwrap();
    assert_eq!(renewed, [("ingress:int_a".to_owned(), 1)], "renewing keeps the epoch");

    // int_b's lease runs out; node-2 takes it over, with the next epoch.
    let taken = h.store.take_leases(&names, "node-2", t0 + 10_000, t0 + 20_000).await.unwrap();
    assert_eq!(taken, [("ingress:int_b".to_owned(), 2)]);
    assert!(h.store.take_leases(&names[1..], "node-1", t0 + 11_000, t0 + 21_000).await.unwrap().is_empty());

    // A round under the old epoch stores nothing; under the new one it stores.
    let (o, d, _) = with_a_webhook(&h).await;
    let old = Fence { name: names[1].clone(), holder: "node-1".into(), epoch: 1 };
    let new = Fence { name: names[1].clone(), holder: "node-2".into(), epoch: 2 };
    let batch = |p: &str, fence: Fence| {
        Batch::new(o.id.clone(), vec![NewRecord::new(record(&d.id, p, None), vec![])]).fenced(Some(fence))
    };
    let out = h.store.write(&[batch("late", old), batch("fresh", new.clone())], &[], t0).await.unwrap();
    assert_eq!(
        (out[0].fenced, out[0].stored, out[0].skipped.clone()),
        (true, 0, vec![0]),
        "the node that lost the lease cannot commit"
    );
    assert_eq!((out[1].fenced, out[1].stored), (false, 1));

    // State is the holder's to set; dropping frees the lease at once.
    h.store.set_lease_state(&names[1], "node-1", r#"{"state":"connected"}"#).await.unwrap();
    assert_eq!(h.store.get_lease(&names[1]).await.unwrap().unwrap().state, None, "only the holder sets it");
    h.store.set_lease_state(&names[1], "node-2", r#"{"state":"connected"}"#).await.unwrap();
    let lease = h.store.get_lease(&names[1]).await.unwrap().unwrap();
    assert_eq!(
        (lease.holder.as_str(), lease.epoch, lease.state.as_deref()),
        ("node-2", 2, Some(r#"{"state":"connected"}"#))
    );
    h.store.drop_leases(&names[1..], "node-2").await.unwrap();
    let taken = h.store.take_leases(&names[1..], "node-1", t0 + 12_000, t0 + 22_000).await.unwrap();
    assert_eq!(taken, [("ingress:int_b".to_owned(), 3)]);
    assert_eq!(h.store.get_lease(&names[1]).await.unwrap().unwrap().state, None, "a new holder starts with no state");
    assert!(h.store.write(&[batch("again", new)], &[], t0).await.unwrap()[0].fenced);
}
