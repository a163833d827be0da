//! The ingress message log and records read back.
use switchyard_core::*;
use switchyard_store::{Batch, MessageFilter, NewDelivery, NewMessage, NewRecord, PageRequest, RecordFilter};

use super::{integration, page, record, setup_org, with_a_webhook};
use crate::Harness;

fn inbound(source_ref: &str, dedup: Option<&str>, payload: &[u8]) -> InboundMessage {
    InboundMessage {
        source_ref: source_ref.into(),
        dedup_key: dedup.map(str::to_owned),
        payload: payload.to_vec(),
        received_at: now_ms(),
        ..Default::default()
    }
}

pub async fn the_message_log_deduplicates_by_source_id(h: Harness) {
    let (o, d, hook) = with_a_webhook(&h).await;
    let broker = integration(&o.id, "broker", "MQTT", Direction::Ingress);
    h.store.create_integration(&broker).await.unwrap();
    let now = now_ms();
    let message =
        |id: &MessageId, m: &InboundMessage, outcome| NewMessage::new(id.clone(), broker.id.clone(), m, outcome, None);
    let from = |id: &MessageId| RecordSource::Integration {
        integration_id: broker.id.clone(),
        message_id: Some(id.to_string()),
    };
    let first_id = MessageId::new();
    let first = inbound("sites/s-7/data", Some("m-1"), br#"{"power": 1}"#);
    let record_of = |id: &MessageId, p: &str| {
        NewRecord::new(record(&d.id, p, None), vec![NewDelivery::new(hook.id.clone())]).from_source(from(id))
    };
    let batch = Batch::new(o.id.clone(), vec![record_of(&first_id, "power")]).with_message(message(
        &first_id,
        &first,
        MessageOutcome::Stored,
    ));
    // The same source id twice in one round, then again in a later one: stored once.
    let again_id = MessageId::new();
    let again = Batch::new(o.id.clone(), vec![record_of(&again_id, "power")]).with_message(message(
        &again_id,
        &first,
        MessageOutcome::Stored,
    ));
    let out = h.store.write(&[batch, again], &[], now).await.unwrap();
    assert_eq!((out[0].stored, out[0].duplicate_message), (1, false));
    assert_eq!(
        (out[1].stored, out[1].duplicates, out[1].duplicate_message, out[1].skipped.clone()),
        (0, 1, true, vec![0])
    );
    let later_id = MessageId::new();
    let later = Batch::new(o.id.clone(), vec![record_of(&later_id, "power")]).with_message(message(
        &later_id,
        &first,
        MessageOutcome::Stored,
    ));
    assert!(h.store.write(&[later], &[], now).await.unwrap()[0].duplicate_message);
    // No source id: never a duplicate. A poison message: logged with no records, its payload in base64.
    let plain_id = MessageId::new();
    let plain = Batch::new(o.id.clone(), vec![record_of(&plain_id, "energy")]).with_message(message(
        &plain_id,
        &inbound("t", None, b"{}"),
        MessageOutcome::Stored,
    ));
    let poison_id = MessageId::new();
    let mut poison_entry = message(&poison_id, &inbound("t", None, &[0xff, 0xfe, 0x00]), MessageOutcome::DecodeError);
    poison_entry.reason = Some("not JSON".into());
    let poison = Batch::new(o.id.clone(), vec![]).with_message(poison_entry);
    let out = h.store.write(&[plain, poison], &[], now).await.unwrap();
    assert_eq!((out[0].stored, out[1].stored), (1, 0));

    let log = h.store.list_messages(&o.id, &broker.id, &MessageFilter::default(), &page(10)).await.unwrap();
    let seen: Vec<(MessageOutcome, Option<&str>, usize)> =
        log.items.iter().map(|m| (m.outcome, m.source_id.as_deref(), m.record_ids.len())).collect();
    assert_eq!(
        seen,
        [
            (MessageOutcome::DecodeError, None, 0),
            (MessageOutcome::Stored, None, 1),
            (MessageOutcome::Duplicate, None, 0),
            (MessageOutcome::Duplicate, None, 0),
            (MessageOutcome::Stored, Some("m-1"), 1),
        ],
        "newest first"
    );
    assert_eq!((log.items[0].payload.as_str(), log.items[0].payload_encoding.as_str()), ("//4A", "base64"));
    assert_eq!(log.items[0].reason.as_deref(), Some("not JSON"));
    assert_eq!((log.items[4].payload.as_str(), log.items[4].payload_size), (r#"{"power": 1}"#, 12));
    let dups = MessageFilter { outcome: Some(MessageOutcome::Duplicate) };
    let two = h.store.list_messages(&o.id, &broker.id, &dups, &page(1)).await.unwrap();
    assert_eq!(two.items.len(), 1);
    let next = PageRequest { limit: 1, after: two.next_cursor.clone() };
    let rest = h.store.list_messages(&o.id, &broker.id, &dups, &next).await.unwrap();
    assert_eq!((rest.items.len(), rest.next_cursor), (1, None));
    assert!(rest.items[0].id < two.items[0].id);
    let other = setup_org(&h, "other").await;
    assert!(h
        .store
        .list_messages(&other.id, &broker.id, &Default::default(), &page(10))
        .await
        .unwrap()
        .items
        .is_empty());

    // The records, newest first, with their sources; filters narrow them.
    let all = h
        .store
        .list_records(&o.id, &RecordFilter { device: Some(d.id.clone()), ..Default::default() }, &page(10))
        .await
        .unwrap();
    let properties: Vec<&str> = all.items.iter().map(|r| r.record.property.as_str()).collect();
    assert_eq!(properties, ["energy", "power"]);
    assert_eq!(all.items[1].source, Some(from(&first_id)));
    assert_eq!(log.items[4].record_ids, [all.items[1].id.clone()]);
    let power = RecordFilter { property: Some("power".into()), ..Default::default() };
    assert_eq!(h.store.list_records(&o.id, &power, &page(10)).await.unwrap().items.len(), 1);
    let elsewhere = RecordFilter { device: Some(DeviceId::new()), ..Default::default() };
    assert!(h.store.list_records(&o.id, &elsewhere, &page(10)).await.unwrap().items.is_empty());

    assert_eq!(h.store.purge_messages(now_ms() + 1, 2).await.unwrap(), 2, "in batches");
    assert_eq!(h.store.purge_messages(now_ms() + 1, 10).await.unwrap(), 3);
    assert_eq!(h.store.purge_messages(now_ms() + 1, 10).await.unwrap(), 0);
}

/// A message's progress is kept in its round, the last of a round winning;
/// a duplicate moves it too (the source went past it); a fenced round does
/// not; set_progress keeps values between rounds.
pub async fn progress_is_kept_with_its_messages(h: Harness) {
    let (o, d, _) = with_a_webhook(&h).await;
    let hub = integration(&o.id, "hub", "AZURE_EVENT_HUBS", Direction::Ingress);
    h.store.create_integration(&hub).await.unwrap();
    let at =
        |offset: &str, source_id: &str| {
            let mut m = inbound("p0", Some(source_id), br#"{"v": 1}"#);
            m.progress = vec![("partition:0".into(), offset.into())];
            let id = MessageId::new();
            Batch::new(o.id.clone(), vec![NewRecord::new(record(&d.id, "v", None), vec![])])
                .with_message(NewMessage::new(id, hub.id.clone(), &m, MessageOutcome::Stored, None))
        };
    let now = now_ms();
    h.store.write(&[at("10", "0/10"), at("11", "0/11")], &[], now).await.unwrap();
    let progress = |h: &Harness| {
        let (o, hub) = (o.id.clone(), hub.id.clone());
        let store = h.store.clone();
        async move { store.get_progress(&o, &hub, "partition:0").await.unwrap() }
    };
    assert_eq!(progress(&h).await.as_deref(), Some("11"), "the round's last");
    let out = h.store.write(&[at("12", "0/11")], &[], now).await.unwrap();
    assert!(out[0].duplicate_message);
    assert_eq!(progress(&h).await.as_deref(), Some("12"), "a duplicate moves it too");
    let fence = switchyard_store::Fence { name: "ingress:x".into(), holder: "gone".into(), epoch: 9 };
    let out = h.store.write(&[at("13", "0/13").fenced(Some(fence))], &[], now).await.unwrap();
    assert!(out[0].fenced);
    assert_eq!(progress(&h).await.as_deref(), Some("12"), "a fenced round keeps nothing");
    h.store.set_progress(&o.id, &hub.id, "partition:0", "20").await.unwrap();
    assert_eq!(progress(&h).await.as_deref(), Some("20"));
    assert_eq!(h.store.get_progress(&o.id, &hub.id, "partition:1").await.unwrap(), None);
    h.store.delete_integration(&o.id, &hub.id).await.unwrap();
    assert_eq!(progress(&h).await, None, "gone with its integration");
}
