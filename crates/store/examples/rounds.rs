//! The writer's round on SQLite, alone: each round stores `per` records with
//! one delivery each (leased, as the writer hands them over) and records the
//! previous round's deliveries as delivered, then commits with the sync the
//! writer uses. Prints the time per record, and the CPU time of it.
//!
//!     cargo run --release -p switchyard-store --example rounds -- [rounds] [per]
use std::time::{Duration, Instant};

use switchyard_core::*;
use switchyard_store::{Batch, Completion, NewDelivery, NewRecord};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let (rounds, per) = (args.next().unwrap_or(1000), args.next().unwrap_or(100));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rounds.db").display());
    let store = switchyard_store::open(&url, Cipher::new(&[7u8; 32])).await.unwrap();
    let now = now_ms();
    let org = Org { id: OrgId::new(), name: "o".into(), custom_integrations: false, created_at: now };
    store.create_org(&org).await.unwrap();
    let place = Place {
        id: PlaceId::new(),
        name: "p".into(),
        parent_id: None,
        metadata: Metadata::new(),
        location: None,
        created_at: now,
        updated_at: now,
    };
    store.create_place(&org.id, &place).await.unwrap();
    let device = Device {
        id: DeviceId::new(),
        name: "d".into(),
        place_id: place.id.clone(),
        device_type: "meter".into(),
        external_ids: Default::default(),
        metadata: Metadata::new(),
        created_at: now,
        updated_at: now,
    };
    store.create_device(&org.id, &device).await.unwrap();
    let integration = Integration {
        id: IntegrationId::new(),
        org_id: org.id.clone(),
        name: "hook".into(),
        type_key: "WEBHOOK".into(),
        direction: Direction::Egress,
        enabled: true,
        properties: Default::default(),
        secrets: Default::default(),
        metadata: Default::default(),
        resource_paths: vec![],
        created_at: now,
        updated_at: now,
    };
    store.create_integration(&integration).await.unwrap();
    if let Ok(sql) = std::env::var("ROUNDS_SQL") {
        rusqlite::Connection::open(dir.path().join("rounds.db")).unwrap().execute_batch(&sql).unwrap();
    }

    let mut previous: Vec<DeliveryId> = Vec::new();
    let mut spent = Duration::ZERO;
    let cpu_before = cpu_seconds();
    for round in 0..rounds {
        let now = now_ms();
        let records: Vec<NewRecord> = (0..per)
            .map(|i| {
                let mut record = Record::new(RecordKind::Value, device.id.clone(), "power".into(), now, 12.5.into());
                record.unit = Some("kW".into());
                record.id = Some(format!("b-{round}-{i}"));
                let mut target = NewDelivery::new(integration.id.clone());
                target.lease_until = now + 30_000;
                NewRecord::new(record, vec![target])
            })
            .collect();
        let completions: Vec<Completion> = previous
            .iter()
            .map(|id| Completion {
                id: id.clone(),
                attempt: Attempt {
                    number: 1,
                    started_at: now,
                    duration_ms: 1,
                    outcome: AttemptOutcome::Delivered,
                    status_code: Some(200),
                    remote_id: Some(id.to_string()),
                    error: None,
                    response_excerpt: None,
                    target: Some("http://127.0.0.1:9000/in".into()),
                    sent: None,
                },
                status: DeliveryStatus::Succeeded,
                next_attempt_at: None,
            })
            .collect();
        previous = records.iter().map(|r| r.targets[0].id.clone()).collect();
        let batch = [Batch::new(org.id.clone(), records)];
        let started = Instant::now();
        store.write(&batch, &completions, now).await.unwrap();
        spent += started.elapsed();
    }
    let n = (rounds * per) as f64;
    println!(
        "{rounds} rounds of {per} records: {:.2} µs a record, {:.2} µs of it CPU (the rest waits for the disk)",
        spent.as_secs_f64() * 1e6 / n,
        (cpu_seconds() - cpu_before) * 1e6 / n
    );
}

/// CPU time this process has used (user and system), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}
