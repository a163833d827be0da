use std::collections::BTreeMap;

use serde_json::json;
use switchyard_core::*;
use switchyard_store::{
    Batch, Completion, IntegrationFilter, LoggedDelivery, NewDelivery, NewRecord, PageRequest, StoreError,
};

use crate::Harness;

mod ingress_leases;
mod messages;
pub use ingress_leases::a_lease_has_one_holder_and_a_takeover_fences_the_old_one;
pub use messages::{progress_is_kept_with_its_messages, the_message_log_deduplicates_by_source_id};

fn org(name: &str) -> Org {
    Org { id: OrgId::new(), name: name.into(), custom_integrations: false, created_at: now_ms() }
}

fn place(name: &str, parent: Option<&PlaceId>) -> Place {
    Place {
        id: PlaceId::new(),
        name: name.into(),
        parent_id: parent.cloned(),
        metadata: Metadata::new(),
        location: None,
        created_at: now_ms(),
        updated_at: now_ms(),
    }
}

fn device(name: &str, place: &PlaceId) -> Device {
    Device {
        id: DeviceId::new(),
        name: name.into(),
        place_id: place.clone(),
        device_type: "meter".into(),
        external_ids: [("serial".to_string(), format!("S-{name}"))].into(),
        metadata: Metadata::new(),
        created_at: now_ms(),
        updated_at: now_ms(),
    }
}

fn integration(org: &OrgId, name: &str, type_key: &str, direction: Direction) -> Integration {
    Integration {
        id: IntegrationId::new(),
        org_id: org.clone(),
        name: name.into(),
        type_key: type_key.into(),
        direction,
        enabled: true,
        properties: json!({"url": "https://example.test/in"}).as_object().unwrap().clone(),
        secrets: BTreeMap::from([("password".to_string(), Secret::new("hunter2-very-secret"))]),
        metadata: [("team".to_string(), "ops".to_string())].into(),
        resource_paths: vec![],
        created_at: now_ms(),
        updated_at: now_ms(),
    }
}

fn page(limit: usize) -> PageRequest {
    PageRequest { limit, after: None }
}

async fn setup_org(h: &Harness, name: &str) -> Org {
    let o = org(name);
    h.store.create_org(&o).await.unwrap();
    o
}

pub async fn migrations_are_idempotent(h: Harness) {
    // Opening the same database again re-runs the migrator, which must find nothing to do.
    let o = setup_org(&h, "a").await;
    if let Some(dir) = &h.dir {
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let again = switchyard_store::open(&url, crate::cipher()).await.unwrap();
        assert_eq!(again.get_org(&o.id).await.unwrap().unwrap().name, "a");
    }
    h.store.ping().await.unwrap();
}

pub async fn orgs_and_keys(h: Harness) {
    let o = setup_org(&h, "Acme").await;
    assert_eq!(h.store.list_orgs().await.unwrap(), vec![o.clone()]);
    assert!(h.store.set_custom_integrations(&o.id, true).await.unwrap());
    assert!(h.store.get_org(&o.id).await.unwrap().unwrap().custom_integrations);

    let new = keys::generate_api_key();
    let key = ApiKey {
        id: ApiKeyId::new(),
        org_id: o.id.clone(),
        name: "ci".into(),
        prefix: new.prefix.clone(),
        scope: Scope::Read,
        created_at: now_ms(),
        revoked_at: None,
    };
    h.store.create_key(&key, &new.hash).await.unwrap();
    let (found, found_org) = h.store.authenticate(&new.hash).await.unwrap().unwrap();
    assert_eq!((found.id.clone(), found.scope, found_org.id.clone()), (key.id.clone(), Scope::Read, o.id.clone()));
    assert!(h.store.authenticate(&keys::hash_api_key("sy_wrong")).await.unwrap().is_none());

    assert!(h.store.revoke_key(&o.id, &key.id).await.unwrap());
    assert!(!h.store.revoke_key(&o.id, &key.id).await.unwrap(), "revoking twice changes nothing");
    assert!(h.store.authenticate(&new.hash).await.unwrap().is_none(), "a revoked key no longer authenticates");
    assert!(h.store.list_keys(&o.id).await.unwrap()[0].revoked_at.is_some());
}

pub async fn tenants_are_isolated(h: Harness) {
    let a = setup_org(&h, "a").await;
    let b = setup_org(&h, "b").await;
    let p = place("site", None);
    h.store.create_place(&a.id, &p).await.unwrap();
    let d = device("m1", &p.id);
    h.store.create_device(&a.id, &d).await.unwrap();
    let i = integration(&a.id, "hook", "WEBHOOK", Direction::Egress);
    h.store.create_integration(&i).await.unwrap();

    assert!(h.store.get_place(&b.id, &p.id).await.unwrap().is_none());
    assert!(h.store.get_device(&b.id, &d.id).await.unwrap().is_none());
    assert!(h.store.get_integration(&b.id, &i.id).await.unwrap().is_none());
    assert!(h.store.list_integrations(&b.id, &IntegrationFilter::default(), &page(10)).await.unwrap().items.is_empty());
    assert!(h.store.resolve(&b.id, &d.path()).await.unwrap().is_none());
    assert!(!h.store.delete_integration(&b.id, &i.id).await.unwrap());
    assert!(!h.store.revoke_key(&b.id, &ApiKeyId::new()).await.unwrap());

    // The database itself refuses links across organizations.
    let foreign_child = place("intruder", Some(&p.id));
    assert!(h.store.create_place(&b.id, &foreign_child).await.is_err());
    assert!(h.store.create_device(&b.id, &device("x", &p.id)).await.is_err());
    let m = ResourceMapping {
        id: MappingId::new(),
        integration_id: i.id.clone(),
        external_id: "ext".into(),
        resource_type: ResourceType::Device,
        resource_path: d.path(),
        device_type: None,
        created_at: now_ms(),
    };
    assert!(h.store.create_mapping(&b.id, &m).await.is_err());
    assert!(h.store.get_integration(&a.id, &i.id).await.unwrap().is_some(), "the owner still sees it");
}

pub async fn place_tree(h: Harness) {
    let o = setup_org(&h, "a").await;
    let root = place("campus", None);
    let child = place("building", Some(&root.id));
    let grandchild = place("floor", Some(&child.id));
    for p in [&root, &child, &grandchild] {
        h.store.create_place(&o.id, p).await.unwrap();
    }
    let roots = h.store.list_places(&o.id, Some(None), &page(10)).await.unwrap();
    assert_eq!(roots.items, vec![root.clone()]);
    let kids = h.store.list_places(&o.id, Some(Some(&root.id)), &page(10)).await.unwrap();
    assert_eq!(kids.items, vec![child.clone()]);
    assert_eq!(h.store.list_places(&o.id, None, &page(10)).await.unwrap().items.len(), 3);

    let mut looped = root.clone();
    looped.parent_id = Some(grandchild.id.clone());
    match h.store.update_place(&o.id, &looped).await {
        Err(StoreError::Invalid { field, .. }) => assert_eq!(field, "parentId"),
        other => panic!("a cycle must be refused, got {other:?}"),
    }
    let mut renamed = child.clone();
    renamed.name = "hall".into();
    assert!(h.store.update_place(&o.id, &renamed).await.unwrap());
    assert_eq!(h.store.get_place(&o.id, &child.id).await.unwrap().unwrap().name, "hall");

    assert!(matches!(h.store.delete_place(&o.id, &root.id).await, Err(StoreError::InUse(_))));
    assert!(h.store.delete_place(&o.id, &grandchild.id).await.unwrap());
    assert!(h.store.get_place(&o.id, &grandchild.id).await.unwrap().is_none());
}

pub async fn devices_and_moves(h: Harness) {
    let o = setup_org(&h, "a").await;
    let p1 = place("one", None);
    let p2 = place("two", None);
    h.store.create_place(&o.id, &p1).await.unwrap();
    h.store.create_place(&o.id, &p2).await.unwrap();
    let mut d = device("m1", &p1.id);
    h.store.create_device(&o.id, &d).await.unwrap();
    assert_eq!(h.store.get_device(&o.id, &d.id).await.unwrap().unwrap(), d);
    assert_eq!(h.store.list_devices(&o.id, Some(&p1.id), &page(10)).await.unwrap().items.len(), 1);
    assert!(h.store.list_devices(&o.id, Some(&p2.id), &page(10)).await.unwrap().items.is_empty());

    d.place_id = p2.id.clone();
    d.device_type = "inverter".into();
    assert!(h.store.update_device(&o.id, &d).await.unwrap());
    assert_eq!(h.store.list_devices(&o.id, Some(&p2.id), &page(10)).await.unwrap().items, vec![d.clone()]);
    assert!(
        h.store.resolve(&o.id, &ResourcePath::Device(p1.id.clone(), d.id.clone())).await.unwrap().is_none(),
        "old path is gone"
    );
    assert!(h.store.resolve(&o.id, &d.path()).await.unwrap().is_some());
    assert!(h.store.delete_device(&o.id, &d.id).await.unwrap());
    assert!(h.store.get_device(&o.id, &d.id).await.unwrap().is_none());
}

pub async fn integrations_round_trip_with_secrets(h: Harness) {
    let o = setup_org(&h, "a").await;
    let i = integration(&o.id, "hook", "WEBHOOK", Direction::Egress);
    h.store.create_integration(&i).await.unwrap();
    let got = h.store.get_integration(&o.id, &i.id).await.unwrap().unwrap();
    assert_eq!(got, i);
    assert_eq!(got.secrets["password"].expose(), "hunter2-very-secret");

    let mut changed = got.clone();
    changed.name = "renamed".into();
    changed.enabled = false;
    changed.secrets.clear();
    changed.properties.insert("method".into(), json!("PUT"));
    assert!(h.store.update_integration(&changed).await.unwrap());
    assert_eq!(h.store.get_integration(&o.id, &i.id).await.unwrap().unwrap(), changed);

    assert!(h.store.delete_integration(&o.id, &i.id).await.unwrap());
    assert!(h.store.get_integration(&o.id, &i.id).await.unwrap().is_none());
    assert!(!h.store.update_integration(&changed).await.unwrap());
}

pub async fn integration_filters_and_paging(h: Harness) {
    let o = setup_org(&h, "a").await;
    let mut made = vec![];
    for (name, t, d, enabled) in [
        ("Alpha hook", "WEBHOOK", Direction::Egress, true),
        ("beta 100% hook", "WEBHOOK", Direction::Egress, false),
        ("Gamma broker", "MQTT", Direction::Ingress, true),
        ("delta_queue", "AWS_SQS", Direction::Egress, true),
        ("deltaXqueue", "AWS_SQS", Direction::Egress, true),
    ] {
        let mut i = integration(&o.id, name, t, d);
        i.enabled = enabled;
        h.store.create_integration(&i).await.unwrap();
        made.push(i.id);
    }
    let names = |f: IntegrationFilter| {
        let store = h.store.clone();
        let org = o.id.clone();
        async move {
            store
                .list_integrations(&org, &f, &page(50))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|i| i.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names(IntegrationFilter { direction: Some(Direction::Ingress), ..Default::default() }).await,
        ["Gamma broker"]
    );
    assert_eq!(names(IntegrationFilter { type_key: Some("WEBHOOK".into()), ..Default::default() }).await.len(), 2);
    assert_eq!(names(IntegrationFilter { enabled: Some(false), ..Default::default() }).await, ["beta 100% hook"]);
    assert_eq!(
        names(IntegrationFilter { q: Some("HOOK".into()), ..Default::default() }).await.len(),
        2,
        "name search ignores case"
    );
    assert_eq!(names(IntegrationFilter { q: Some("100%".into()), ..Default::default() }).await, ["beta 100% hook"]);
    assert_eq!(
        names(IntegrationFilter { q: Some("delta_".into()), ..Default::default() }).await,
        ["delta_queue"],
        "_ is literal"
    );

    let mut seen = vec![];
    let mut req = page(2);
    loop {
        let p = h.store.list_integrations(&o.id, &IntegrationFilter::default(), &req).await.unwrap();
        assert!(p.items.len() <= 2);
        seen.extend(p.items.into_iter().map(|i| i.id));
        match p.next_cursor {
            Some(c) => req.after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, made, "pages cover every integration once, in creation order");
}

pub async fn mappings(h: Harness) {
    let o = setup_org(&h, "a").await;
    let p1 = place("one", None);
    let p2 = place("two", None);
    h.store.create_place(&o.id, &p1).await.unwrap();
    h.store.create_place(&o.id, &p2).await.unwrap();
    let mut d = device("m1", &p1.id);
    h.store.create_device(&o.id, &d).await.unwrap();
    let i = integration(&o.id, "broker", "MQTT", Direction::Ingress);
    h.store.create_integration(&i).await.unwrap();
    let mapping = |ext: &str, path: ResourcePath| ResourceMapping {
        id: MappingId::new(),
        integration_id: i.id.clone(),
        external_id: ext.into(),
        resource_type: path.resource_type().unwrap(),
        resource_path: path,
        device_type: Some("meter".into()),
        created_at: now_ms(),
    };
    let to_device = mapping("sensor-1", d.path());
    let to_place = mapping("site-1", ResourcePath::Place(p2.id.clone()));
    h.store.create_mapping(&o.id, &to_device).await.unwrap();
    h.store.create_mapping(&o.id, &to_place).await.unwrap();
    match h.store.create_mapping(&o.id, &mapping("sensor-1", ResourcePath::Place(p1.id.clone()))).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("sensor-1")),
        other => panic!("duplicate external id must conflict, got {other:?}"),
    }
    let listed = h.store.list_mappings(&o.id, &i.id, &page(10)).await.unwrap().items;
    assert_eq!(listed, vec![to_device.clone(), to_place.clone()]);

    // A mapped device can move; its mapping follows it. It cannot be deleted while mapped.
    d.place_id = p2.id.clone();
    h.store.update_device(&o.id, &d).await.unwrap();
    assert_eq!(h.store.get_mapping(&o.id, &to_device.id).await.unwrap().unwrap().resource_path, d.path());
    assert!(matches!(h.store.delete_device(&o.id, &d.id).await, Err(StoreError::InUse(_))));
    assert!(matches!(h.store.delete_place(&o.id, &p2.id).await, Err(StoreError::InUse(_))));

    assert!(h.store.delete_mapping(&o.id, &to_place.id).await.unwrap());
    assert!(!h.store.delete_mapping(&o.id, &to_place.id).await.unwrap());
    // Deleting the integration takes its mappings with it.
    assert!(h.store.delete_integration(&o.id, &i.id).await.unwrap());
    assert!(h.store.get_mapping(&o.id, &to_device.id).await.unwrap().is_none());
    assert!(h.store.delete_device(&o.id, &d.id).await.unwrap(), "no mapping holds the device any more");
}

pub async fn resources_under_paths(h: Harness) {
    let o = setup_org(&h, "a").await;
    let root = place("campus", None);
    let child = place("building", Some(&root.id));
    h.store.create_place(&o.id, &root).await.unwrap();
    h.store.create_place(&o.id, &child).await.unwrap();
    let d = device("m1", &root.id);
    h.store.create_device(&o.id, &d).await.unwrap();

    let top = h.store.children(&o.id, &ResourcePath::Root, &page(10)).await.unwrap().items;
    assert_eq!(top.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [root.id.as_str()]);
    let under = h.store.children(&o.id, &ResourcePath::Place(root.id.clone()), &page(10)).await.unwrap().items;
    let mut kinds: Vec<_> = under.iter().map(|e| (e.resource_type.as_str(), e.path.to_string())).collect();
    kinds.sort();
    assert_eq!(kinds, vec![("device", d.path().to_string()), ("place", format!("/places/{}", child.id))]);
    let first = h.store.children(&o.id, &ResourcePath::Place(root.id.clone()), &page(1)).await.unwrap();
    assert_eq!(first.items.len(), 1);
    let rest = h
        .store
        .children(&o.id, &ResourcePath::Place(root.id.clone()), &PageRequest { limit: 1, after: first.next_cursor })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_ne!(rest.items[0].id, first.items[0].id);

    let resolved = h.store.resolve(&o.id, &d.path()).await.unwrap().unwrap();
    assert_eq!((resolved.resource_type, resolved.device_type.as_deref()), (ResourceType::Device, Some("meter")));
    assert!(
        h.store.resolve(&o.id, &ResourcePath::Device(child.id.clone(), d.id.clone())).await.unwrap().is_none(),
        "wrong place"
    );
    assert!(h.store.children(&o.id, &d.path(), &page(10)).await.unwrap().items.is_empty());
}

pub async fn secrets_are_encrypted_at_rest(h: Harness) {
    let o = setup_org(&h, "a").await;
    let i = integration(&o.id, "hook", "WEBHOOK", Direction::Egress);
    h.store.create_integration(&i).await.unwrap();
    let globals = Globals {
        values: [("site".to_owned(), "north".to_owned())].into(),
        secrets: [("brokerPassword".to_owned(), Secret::new("hunter2-very-secret"))].into(),
    };
    h.store.set_globals(&o.id, &globals).await.unwrap();
    assert_eq!(h.store.get_globals(&o.id).await.unwrap(), globals, "secret globals read back decrypted");
    if let Some(dir) = &h.dir {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        assert!(bytes.windows(4).any(|w| w == b"hook"), "the scan must see the rows it checks");
        assert!(
            !bytes.windows(19).any(|w| w == b"hunter2-very-secret"),
            "secret found in plain text in the database files"
        );
    }
    // Read with the wrong key, the secrets are unreadable rather than wrong.
    let wrong = Cipher::new(&[8u8; 32]);
    let url = match &h.dir {
        Some(dir) => format!("sqlite://{}", dir.path().join("store.db").display()),
        None => return,
    };
    let other = switchyard_store::open(&url, wrong).await.unwrap();
    assert!(matches!(other.get_integration(&o.id, &i.id).await, Err(StoreError::Cipher(_))));
    assert!(matches!(other.get_globals(&o.id).await, Err(StoreError::Cipher(_))));
}

fn record(device: &DeviceId, property: &str, client_id: Option<&str>) -> Record {
    Record {
        id: client_id.map(str::to_owned),
        ..Record::new(RecordKind::Value, device.clone(), property.into(), now_ms(), json!(1))
    }
}

fn completion(id: &DeliveryId, status: DeliveryStatus, next: Option<i64>, error: Option<&str>) -> Completion {
    let delivered = status == DeliveryStatus::Succeeded;
    Completion {
        id: id.clone(),
        attempt: Attempt {
            number: 1,
            started_at: now_ms(),
            duration_ms: 3,
            outcome: if delivered { AttemptOutcome::Delivered } else { AttemptOutcome::Retry },
            status_code: Some(if delivered { 200 } else { 503 }),
            remote_id: None,
            error: error.map(str::to_owned),
            response_excerpt: Some("ok".into()),
            target: Some("https://example.test/in".into()),
            sent: Some(format!("sent at attempt 1 ({})", status.as_str())),
        },
        status,
        next_attempt_at: next,
    }
}

/// The writer's round: records with their deliveries (leased to this node or
/// left to a claim), sender ids seen before skipped with their fan-out, and
/// delivery results, all in one transaction; then retention by id range.
/// An organization with a device in a Place and an egress webhook integration.
async fn with_a_webhook(h: &Harness) -> (Org, Device, Integration) {
    let o = setup_org(h, "acme").await;
    let p = place("site", None);
    h.store.create_place(&o.id, &p).await.unwrap();
    let d = device("m1", &p.id);
    h.store.create_device(&o.id, &d).await.unwrap();
    let i = integration(&o.id, "hook", "WEBHOOK", Direction::Egress);
    h.store.create_integration(&i).await.unwrap();
    (o, d, i)
}

pub async fn writer_rounds(h: Harness) {
    let (o, d, i) = with_a_webhook(&h).await;
    let now = now_ms();

    let mut leased = NewDelivery::new(i.id.clone());
    leased.lease_until = now + 60_000;
    let waiting = NewDelivery::new(i.id.clone());
    let from_broker =
        RecordSource::Integration { integration_id: IntegrationId::new(), message_id: Some("m-1".into()) };
    let from_key = RecordSource::ApiKey { api_key_id: ApiKeyId::new() };
    let first =
        NewRecord::new(record(&d.id, "power", Some("a")), vec![leased.clone()]).from_source(from_broker.clone());
    let second = NewRecord::new(record(&d.id, "energy", None), vec![waiting.clone()]).from_source(from_key.clone());
    let out = h.store.write(&[Batch::new(o.id.clone(), vec![first, second])], &[], now).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].stored, out[0].duplicates, out[0].deliveries), (2, 0, 2));
    assert!(out[0].skipped.is_empty());
    let skipped = h.store.claim_due(now, now + 30_000, 10, std::slice::from_ref(&i.id)).await.unwrap();
    assert!(skipped.is_empty(), "an excluded integration's deliveries stay in the outbox");
    let claimed = h.store.claim_due(now, now + 30_000, 10, &[]).await.unwrap();
    let ids: Vec<&DeliveryId> = claimed.iter().map(|c| &c.id).collect();
    assert_eq!(ids, [&waiting.id], "a delivery leased at its creation is not claimed");
    assert_eq!(claimed[0].attempts, 0);
    let in_flight = h.store.get_delivery(&o.id, &leased.id).await.unwrap().unwrap();
    assert_eq!(in_flight.delivery.next_attempt_at, Some(now + 60_000), "a leased delivery is due when its lease ends");
    assert_eq!(in_flight.source, Some(from_broker), "a record keeps its source");
    assert_eq!(h.store.get_delivery(&o.id, &waiting.id).await.unwrap().unwrap().source, Some(from_key));
    assert!(claimed[0].body.contains("\"energy\""), "{}", claimed[0].body);

    // A round with a duplicate sender id and two results.
    let dup = NewRecord::new(record(&d.id, "power", Some("a")), vec![NewDelivery::new(i.id.clone())]);
    let fresh = NewRecord::new(record(&d.id, "volts", Some("b")), vec![]);
    let results = [
        completion(&leased.id, DeliveryStatus::Succeeded, None, None),
        completion(&waiting.id, DeliveryStatus::Retrying, Some(now + 1_000), Some("503 Service Unavailable")),
    ];
    let out = h.store.write(&[Batch::new(o.id.clone(), vec![dup.clone(), fresh])], &results, now).await.unwrap();
    assert_eq!((out[0].stored, out[0].duplicates, out[0].deliveries), (1, 1, 0));
    assert_eq!(out[0].skipped, [0], "the duplicate's position");
    assert!(h.store.get_delivery(&o.id, &dup.targets[0].id).await.unwrap().is_none(), "no fan-out for a duplicate");
    let LoggedDelivery { delivery: done, attempts, .. } =
        h.store.get_delivery(&o.id, &leased.id).await.unwrap().unwrap();
    assert_eq!(done.status, DeliveryStatus::Succeeded);
    assert!(done.completed_at.is_some());
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(200));
    let LoggedDelivery { delivery: retrying, attempts, .. } =
        h.store.get_delivery(&o.id, &waiting.id).await.unwrap().unwrap();
    assert_eq!(retrying.status, DeliveryStatus::Retrying);
    assert_eq!(retrying.next_attempt_at, Some(now + 1_000));
    assert_eq!(retrying.last_error.as_deref(), Some("503 Service Unavailable"));
    assert_eq!(attempts[0].error.as_deref(), Some("503 Service Unavailable"));
    // Results alone (no records) are a round too; writing one again changes nothing.
    h.store.complete(&results[..1]).await.unwrap();
    let attempts = h.store.get_delivery(&o.id, &leased.id).await.unwrap().unwrap().attempts;
    assert_eq!(attempts.len(), 1);
    let due = h.store.claim_due(now + 2_000, now + 32_000, 10, &[]).await.unwrap();
    assert_eq!(due.iter().map(|c| &c.id).collect::<Vec<_>>(), [&waiting.id], "due again after its delay");
    assert_eq!(due[0].attempts, 1);
    assert_eq!(attempts[0].sent.as_deref(), Some("sent at attempt 1 (succeeded)"), "what was sent is kept");
    // A second attempt moves the first to the attempts table, with what it sent.
    let mut second = completion(&waiting.id, DeliveryStatus::Retrying, Some(now + 60_000), Some("503 again"));
    second.attempt.number = 2;
    second.attempt.sent = Some("sent at attempt 2".into());
    h.store.complete(&[second]).await.unwrap();
    let sent: Vec<Option<String>> =
        h.store.get_delivery(&o.id, &waiting.id).await.unwrap().unwrap().attempts.into_iter().map(|a| a.sent).collect();
    assert_eq!(sent, [Some("sent at attempt 1 (retrying)".into()), Some("sent at attempt 2".into())]);

    // Retention: finished deliveries made before the bound, then records no delivery needs.
    assert_eq!(h.store.purge(now - 60_000, 100).await.unwrap(), (0, 0), "nothing is that old");
    // A delivery finishes when its attempt does (started plus its duration, here
    // a few ms ahead of the clock): the bound must come after that.
    let finished = done.completed_at.unwrap();
    let (deliveries, records) = h.store.purge(finished.max(now_ms()) + 1, 100).await.unwrap();
    assert_eq!(deliveries, 1, "the succeeded delivery");
    assert_eq!(records, 2, "its record and the one never routed; the retrying one's record stays");
    assert!(h.store.get_delivery(&o.id, &leased.id).await.unwrap().is_none());
    assert!(h.store.get_delivery(&o.id, &waiting.id).await.unwrap().is_some());
}

/// A holder renews only the leases it still holds: not one that ran out and
/// was claimed again, not a finished delivery.
pub async fn leases_renew_only_for_their_holder(h: Harness) {
    let (o, d, i) = with_a_webhook(&h).await;
    let now = now_ms();
    let targets: Vec<NewDelivery> = (0..3)
        .map(|_| {
            let mut t = NewDelivery::new(i.id.clone());
            t.lease_until = now + 1_000;
            t
        })
        .collect();
    let records = targets
        .iter()
        .enumerate()
        .map(|(n, t)| NewRecord::new(record(&d.id, &format!("p{n}"), None), vec![t.clone()]))
        .collect();
    h.store.write(&[Batch::new(o.id.clone(), records)], &[], now).await.unwrap();
    let (kept, reclaimed, finished) = (&targets[0], &targets[1], &targets[2]);

    // The first lease runs out for everyone at now + 1 s; a claim after that takes all three.
    let later = now + 2_000;
    let claimed = h.store.claim_due(later, later + 30_000, 10, &[]).await.unwrap();
    assert_eq!(claimed.len(), 3, "run-out leases are claimable");
    assert!(claimed.iter().all(|c| c.lease_until == later + 30_000), "a claim says until when it holds");
    // Pretend the first and third were never claimed again: put their first lease back.
    h.store.renew_leases(&[(kept.id.clone(), later + 30_000)], now + 1_000).await.unwrap();
    h.store.complete(&[completion(&finished.id, DeliveryStatus::Succeeded, None, None)]).await.unwrap();

    let held =
        [(kept.id.clone(), now + 1_000), (reclaimed.id.clone(), now + 1_000), (finished.id.clone(), now + 1_000)];
    let renewed = h.store.renew_leases(&held, later + 60_000).await.unwrap();
    assert_eq!(renewed, std::slice::from_ref(&kept.id), "only the lease still held as given");
    assert!(h.store.claim_due(later + 30_001, later + 90_000, 10, &[]).await.unwrap().iter().all(|c| c.id != kept.id));
    let again = h.store.claim_due(later + 60_001, later + 90_000, 10, &[]).await.unwrap();
    assert!(again.iter().any(|c| c.id == kept.id), "a renewed lease runs out at its new end");
    assert!(again.iter().all(|c| c.id != finished.id), "a finished delivery is never claimed");
}

/// An attempt as the test checks it: number, status code, error, answer.
type Seen = (u32, Option<u16>, Option<String>, Option<String>);

/// A delivery keeps every attempt, each with its own result, however it
/// was written (the latest on the delivery's row, earlier ones moved to the
/// attempts table): through retries, a resend, a result written twice, and a
/// late result for an older attempt, which changes nothing.
pub async fn every_attempt_is_kept_in_order(h: Harness) {
    let (o, d, i) = with_a_webhook(&h).await;
    let now = now_ms();
    let target = NewDelivery::new(i.id.clone());
    let rec = NewRecord::new(record(&d.id, "power", None), vec![target.clone()]);
    h.store.write(&[Batch::new(o.id.clone(), vec![rec])], &[], now).await.unwrap();
    let nth = |number: u32, status: DeliveryStatus, code: u16| {
        let mut c = completion(&target.id, status, None, None);
        c.attempt.number = number;
        c.attempt.started_at = now + i64::from(number) * 1_000;
        c.attempt.status_code = Some(code);
        c.attempt.response_excerpt = Some(format!("answer {number}"));
        if status == DeliveryStatus::Retrying {
            c.next_attempt_at = Some(c.attempt.started_at + 500);
            c.attempt.error = Some(format!("HTTP {code}"));
        }
        c
    };
    let history = |h: &Harness| {
        let (store, org, id) = (h.store.clone(), o.id.clone(), target.id.clone());
        async move {
            let LoggedDelivery { delivery, attempts, .. } = store.get_delivery(&org, &id).await.unwrap().unwrap();
            let seen: Vec<Seen> = attempts
                .iter()
                .map(|a| (a.number, a.status_code, a.error.clone(), a.response_excerpt.clone()))
                .collect();
            assert!(attempts.windows(2).all(|w| w[0].started_at < w[1].started_at), "in order: {attempts:?}");
            (delivery, seen)
        }
    };
    let first = nth(1, DeliveryStatus::Retrying, 503);
    h.store.write(&[], std::slice::from_ref(&first), now).await.unwrap();
    h.store.complete(&[nth(2, DeliveryStatus::Retrying, 502)]).await.unwrap();
    let third = nth(3, DeliveryStatus::Succeeded, 200);
    h.store.complete(std::slice::from_ref(&third)).await.unwrap();
    let (delivery, seen) = history(&h).await;
    assert_eq!(delivery.status, DeliveryStatus::Succeeded);
    assert_eq!(delivery.attempt_count, 3);
    assert_eq!(delivery.last_error, None, "a delivered attempt clears the last error");
    let answer = |n: u32| Some(format!("answer {n}"));
    let expected = vec![
        (1, Some(503), Some("HTTP 503".to_owned()), answer(1)),
        (2, Some(502), Some("HTTP 502".to_owned()), answer(2)),
        (3, Some(200), None, answer(3)),
    ];
    assert_eq!(seen, expected);

    // The third result again, and a late copy of the first: nothing changes.
    h.store.complete(&[third.clone(), first]).await.unwrap();
    let (delivery, seen) = history(&h).await;
    assert_eq!((delivery.status, delivery.attempt_count), (DeliveryStatus::Succeeded, 3));
    assert_eq!(seen, expected);

    // Resent, then sent again: a fourth attempt after the three.
    assert!(h.store.resend(&o.id, &target.id, now + 10_000).await.unwrap());
    h.store.complete(&[nth(4, DeliveryStatus::Succeeded, 201)]).await.unwrap();
    let (delivery, seen) = history(&h).await;
    assert_eq!((delivery.status, delivery.attempt_count), (DeliveryStatus::Succeeded, 4));
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3], (4, Some(201), None, answer(4)));
    assert_eq!(&seen[..3], &expected[..]);
}

/// After a crash of the only node, what it held in flight is due at once,
/// not when its leases would have run out.
pub async fn released_leases_are_due_at_once(h: Harness) {
    let (o, d, i) = with_a_webhook(&h).await;
    let now = now_ms();
    let mut handed = NewDelivery::new(i.id.clone());
    handed.lease_until = now + 30_000;
    let waiting = NewDelivery::new(i.id.clone());
    let records = vec![
        NewRecord::new(record(&d.id, "a", None), vec![handed.clone()]),
        NewRecord::new(record(&d.id, "b", None), vec![waiting.clone()]),
    ];
    h.store.write(&[Batch::new(o.id.clone(), records)], &[], now).await.unwrap();
    let claimed = h.store.claim_due(now, now + 30_000, 10, &[]).await.unwrap();
    assert_eq!(claimed.iter().map(|c| &c.id).collect::<Vec<_>>(), [&waiting.id]);
    assert!(h.store.claim_due(now_ms(), now + 60_000, 10, &[]).await.unwrap().is_empty(), "both are in flight");

    assert_eq!(h.store.release_leases().await.unwrap(), 2);
    let mut again: Vec<DeliveryId> =
        h.store.claim_due(now_ms(), now + 60_000, 10, &[]).await.unwrap().into_iter().map(|c| c.id).collect();
    again.sort();
    let mut both = vec![handed.id.clone(), waiting.id.clone()];
    both.sort();
    assert_eq!(again, both, "released, each is due now");
}
