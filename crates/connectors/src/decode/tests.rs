//! The formats and the settings, without a peer.
use super::*;

fn decoder(props: Value) -> Decoder {
    let specs = properties();
    let resolved = Resolved { properties: props.as_object().unwrap().clone(), ..Default::default() };
    Decoder::read(&Settings::of_resolved(&specs, &resolved)).unwrap()
}

fn message(topic: &str, payload: &str) -> InboundMessage {
    InboundMessage {
        source_ref: topic.into(),
        payload: payload.as_bytes().to_vec(),
        received_at: 1_700_000_000_000,
        ..Default::default()
    }
}

fn summary(drafts: &[RecordDraft]) -> Vec<(String, String, i64, Value)> {
    drafts
        .iter()
        .map(|d| (d.external_id.clone().unwrap_or_default(), d.property.clone(), d.timestamp, d.payload.clone()))
        .collect()
}

#[test]
fn json_fields_become_one_value_each_named_by_a_topic_level() {
    let d = decoder(json!({"format": "json", "externalIdFrom": "topic:1"}));
    let drafts = d.decode(&message("sites/sensor-7/data", r#"{"power": 12.5, "temp": 21}"#)).unwrap();
    assert_eq!(
        summary(&drafts),
        [
            ("sensor-7".into(), "power".into(), 1_700_000_000_000, json!(12.5)),
            ("sensor-7".into(), "temp".into(), 1_700_000_000_000, json!(21))
        ]
    );
}

#[test]
fn json_pointers_name_the_object_the_device_and_the_time_which_are_not_values() {
    let d = decoder(json!({
        "externalIdFrom": "pointer:/data/meter", "valuePointer": "/data", "timestampPointer": "/data/at",
        "kind": "event"
    }));
    let m = message("t", r#"{"data": {"meter": 42, "at": "2024-01-02T03:04:05.500Z", "kwh": 3}}"#);
    let drafts = d.decode(&m).unwrap();
    assert_eq!(summary(&drafts), [("42".into(), "kwh".into(), 1_704_164_645_500, json!(3))]);
    assert_eq!(drafts[0].kind, RecordKind::Event);
    let offset = message("t", r#"{"data": {"meter": 42, "at": "2024-01-02T05:04:05.500+02:00", "kwh": 3}}"#);
    assert_eq!(d.decode(&offset).unwrap()[0].timestamp, 1_704_164_645_500, "an offset is applied");
    let seconds = message("t", r#"{"data": {"meter": "m", "at": 1700000000, "kwh": 3}}"#);
    assert_eq!(d.decode(&seconds).unwrap()[0].timestamp, 1_700_000_000_000, "seconds are read as seconds");
    let missing = message("t", r#"{"data": {"kwh": 3}}"#);
    assert_eq!(d.decode(&missing).unwrap_err().0, "no external id at externalIdFrom `pointer:/data/meter`");
}

#[test]
fn senml_resolves_base_fields_and_relative_times() {
    let d = decoder(json!({"format": "senml", "externalIdFrom": "bn"}));
    let m = message(
        "t",
        r#"[{"bn": "urn:dev:ow:10e2073a01080063:", "bt": 1.320067464e9, "bu": "%RH", "n": "humidity", "v": 20},
            {"n": "temp", "u": "Cel", "t": 60, "v": 23.1}, {"n": "door", "vb": true}]"#,
    );
    let drafts = d.decode(&m).unwrap();
    let device = "urn:dev:ow:10e2073a01080063".to_owned();
    assert_eq!(
        summary(&drafts),
        [
            (device.clone(), "humidity".into(), 1_320_067_464_000, json!(20)),
            (device.clone(), "temp".into(), 1_320_067_524_000, json!(23.1)),
            (device, "door".into(), 1_320_067_464_000, json!(true))
        ]
    );
    let units: Vec<_> = drafts.iter().map(|d| d.unit.as_deref()).collect();
    assert_eq!(units, [Some("%RH"), Some("Cel"), Some("%RH")]);
    let err = d.decode(&message("t", r#"[{"bn": "dev:", "v": 1}]"#)).unwrap_err();
    assert_eq!(err.0, "[0]: the record has no name");
    let ok = d
        .decode(&message("t", r#"[{"bn": "dev:", "bt": 1.5e9, "n": "t", "v": 1}, {"n": "u", "t": -5, "vs": "x"}]"#))
        .unwrap();
    assert_eq!(
        summary(&ok),
        [
            ("dev".into(), "t".into(), 1_500_000_000_000, json!(1)),
            ("dev".into(), "u".into(), 1_499_999_995_000, json!("x"))
        ]
    );
    let relative = d.decode(&message("t", r#"[{"bn": "dev/", "n": "t", "t": -10, "v": 1}]"#)).unwrap();
    assert_eq!(relative[0].timestamp, 1_700_000_000_000 - 10_000, "under 2^28 s: relative to the receive time");
}

#[test]
fn records_and_raw_formats() {
    let d = decoder(json!({"format": "records", "externalIdFrom": "topic:0"}));
    let one = r#"{"kind": "value", "property": "p", "timestamp": 5, "payload": 1}"#;
    let drafts = d.decode(&message("meter-1", one)).unwrap();
    assert_eq!(summary(&drafts), [("meter-1".into(), "p".into(), 5, json!(1))]);
    let many = format!(r#"{{"records": [{one}, {one}]}}"#);
    assert_eq!(d.decode(&message("m", &many)).unwrap().len(), 2);
    assert!(d.decode(&message("m", r#"{"kind": "value"}"#)).unwrap_err().0.starts_with("records[0]: missing field"));
    let raw = decoder(json!({"format": "raw", "externalIdFrom": "topic:1"}));
    let drafts = raw.decode(&message("plant/pump-2/state", "running")).unwrap();
    assert_eq!(summary(&drafts), [("pump-2".into(), "plant/pump-2/state".into(), 1_700_000_000_000, json!("running"))]);
}

#[test]
fn message_ids_come_from_the_settings_or_the_source() {
    let d = decoder(json!({"externalIdFrom": "topic:0", "messageIdFrom": "pointer:/id"}));
    let m = message("t", r#"{"id": 7, "v": 1}"#);
    assert_eq!(d.message_id(&m).as_deref(), Some("7"));
    assert_eq!(
        summary(&d.decode(&m).unwrap()),
        [("t".into(), "v".into(), 1_700_000_000_000, json!(1))],
        "the id is no value"
    );
    let by_attribute = decoder(json!({"externalIdFrom": "topic:0", "messageIdFrom": "attribute:msg"}));
    let mut m = message("t", "{}");
    m.attributes.push(("msg".into(), "abc".into()));
    m.dedup_key = Some("source's".into());
    assert_eq!(by_attribute.message_id(&m).as_deref(), Some("abc"));
    let plain = decoder(json!({"externalIdFrom": "topic:0"}));
    assert_eq!(plain.message_id(&m).as_deref(), Some("source's"));
}

#[test]
fn settings_that_cannot_work_are_refused_naming_the_property() {
    let specs = properties();
    let check = |props: Value| {
        let resolved = Resolved { properties: props.as_object().unwrap().clone(), ..Default::default() };
        super::check(&resolved, &specs, Default::default())
            .err()
            .map(|e| (e.0[0].field.clone(), e.0[0].message.clone()))
    };
    assert_eq!(check(json!({"format": "records"})), None);
    assert_eq!(
        check(json!({"format": "json"})),
        Some(("properties.externalIdFrom".into(), "is required for the json format".into()))
    );
    assert_eq!(
        check(json!({"externalIdFrom": "topic:x"})),
        Some(("properties.externalIdFrom".into(), "`x` is not a topic level (0, 1, …)".into()))
    );
    assert_eq!(
        check(json!({"externalIdFrom": "bn"})),
        Some(("properties.externalIdFrom".into(), "`bn` is for the senml format".into()))
    );
    assert_eq!(
        check(json!({"externalIdFrom": "topic:1", "messageIdFrom": "topic:1"})),
        Some(("properties.messageIdFrom".into(), "`topic:1` is not a form this property takes".into()))
    );
    assert_eq!(
        check(json!({"externalIdFrom": "topic:1", "timestampPointer": "at"})),
        Some(("properties.timestampPointer".into(), "`at` is not a JSON pointer (it starts with `/`)".into()))
    );
}
