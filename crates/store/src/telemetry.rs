//! Ingest: records and their fan-out, written in one transaction.
use switchyard_core::{DeliveryId, DeliveryStatus, OrgId};

use crate::db::{q, Q};
use crate::{json_text, IngestOutcome, NewRecord, Result, SqlStore};

/// Rows per multi-row INSERT (well under both drivers' parameter limits).
const CHUNK: usize = 400;

/// Appends `($a, $b, …)` for one row of a multi-row INSERT.
pub(crate) fn push_row(query: &mut Q, args: Vec<crate::db::Arg>) {
    let placeholders: Vec<String> = args.into_iter().map(|a| query.arg(a)).collect();
    let sep = if query.sql.ends_with("VALUES ") { "" } else { ", " };
    query.push_sql(&format!("{sep}({})", placeholders.join(", ")));
}

impl SqlStore {
    pub(crate) async fn ingest_records(&self, org: &OrgId, records: &[NewRecord], now: i64) -> Result<IngestOutcome> {
        let mut tx = self.pool.begin().await?;
        let mut outcome = IngestOutcome::default();
        for chunk in records.chunks(CHUNK) {
            let mut insert = q(
                "INSERT INTO records (id, org_id, client_id, device_id, kind, property, ts, received_at, body) VALUES ",
            );
            for r in chunk {
                push_row(
                    &mut insert,
                    vec![
                        (&r.id).into(),
                        org.into(),
                        r.record.id.clone().into(),
                        (&r.record.device_id).into(),
                        r.record.kind.as_str().into(),
                        r.record.property.as_str().into(),
                        r.record.timestamp.into(),
                        r.record.received_at.into(),
                        json_text(&r.record).into(),
                    ],
                );
            }
            insert.push_sql(" ON CONFLICT (org_id, client_id) DO NOTHING RETURNING id");
            let stored: std::collections::HashSet<String> =
                tx.conn().fetch_all(insert).await?.iter().map(|r| r.get::<String>("id")).collect::<Result<_>>()?;
            outcome.stored += stored.len();
            outcome.duplicates += chunk.len() - stored.len();
            let fanout: Vec<_> = chunk
                .iter()
                .filter(|r| stored.contains(r.id.as_str()))
                .flat_map(|r| r.targets.iter().map(move |t| (r, t)))
                .collect();
            for rows in fanout.chunks(CHUNK) {
                let mut deliveries =
                    q("INSERT INTO deliveries (id, org_id, integration_id, record_id, status, attempts, retry_from, \
                                        next_attempt_at, lease_until, created_at, updated_at) VALUES ");
                for (record, integration) in rows {
                    push_row(
                        &mut deliveries,
                        vec![
                            (&DeliveryId::new()).into(),
                            org.into(),
                            (*integration).into(),
                            (&record.id).into(),
                            DeliveryStatus::Pending.as_str().into(),
                            0i64.into(),
                            0i64.into(),
                            now.into(),
                            0i64.into(),
                            now.into(),
                            now.into(),
                        ],
                    );
                }
                outcome.deliveries += tx.conn().execute(deliveries).await? as usize;
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }
}
