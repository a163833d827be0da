//! The writer round's statements, written once for both drivers: sqlx
//! sends them as multi-row statements (PostgreSQL's rounds, backfills on
//! both backends), the SQLite round (`sqlite_round.rs`) prepares them once
//! with one row of positional parameters. Each statement's columns and the
//! values bound to them are listed here, side by side, so the two drivers
//! cannot write different columns. (`MOVE_LATEST` in `deliveries.rs` is one
//! `INSERT … SELECT` that both run as it is.)
use std::sync::OnceLock;

use switchyard_core::{ActionId, DeliveryStatus, OrgId, RecordId};

use crate::db::Arg;
use crate::deliveries::new_state;
use crate::{Completion, NewDelivery, NewMessage, NewRecord};

/// An `INSERT` of a fixed column list; its texts are made once.
pub(crate) struct Insert {
    table: &'static str,
    columns: &'static [&'static str],
    /// What follows the rows (a conflict rule).
    tail: &'static str,
    head: OnceLock<String>,
    one_row: OnceLock<String>,
}

impl Insert {
    const fn new(table: &'static str, columns: &'static [&'static str], tail: &'static str) -> Self {
        Self { table, columns, tail, head: OnceLock::new(), one_row: OnceLock::new() }
    }

    /// `INSERT INTO table (columns) VALUES `, for rows to be appended.
    pub(crate) fn head(&self) -> &str {
        self.head.get_or_init(|| format!("INSERT INTO {} ({}) VALUES ", self.table, self.columns.join(", ")))
    }

    pub(crate) fn tail(&self) -> &'static str {
        self.tail
    }

    /// The statement with one row of positional parameters (`?1`…).
    pub(crate) fn one_row(&self) -> &str {
        self.one_row.get_or_init(|| {
            let params: Vec<String> = (1..=self.columns.len()).map(|i| format!("?{i}")).collect();
            format!("{}({}){}", self.head(), params.join(", "), self.tail)
        })
    }
}

/// Records, skipping a sender id seen before.
pub(crate) static RECORDS: Insert = Insert::new(
    "records",
    &[
        "id",
        "org_id",
        "client_id",
        "device_id",
        "kind",
        "property",
        "ts",
        "received_at",
        "body",
        "source",
        "source_message_id",
    ],
    " ON CONFLICT (org_id, client_id) DO NOTHING",
);

/// A record's values, in [`RECORDS`]' order.
pub(crate) fn record_values(org: &OrgId, r: &NewRecord) -> Vec<Arg> {
    vec![
        (&r.id).into(),
        org.into(),
        r.record.id.clone().into(),
        (&r.record.device_id).into(),
        r.record.kind.as_str().into(),
        r.record.property.as_str().into(),
        r.record.timestamp.into(),
        r.record.received_at.into(),
        r.body.clone().into(),
        r.source.as_ref().map(|s| s.id()).into(),
        r.source.as_ref().and_then(|s| s.message_id()).into(),
    ]
}

/// The same values for the SQLite round, borrowed.
#[allow(clippy::type_complexity)]
pub(crate) fn record_params<'a>(
    org: &'a OrgId,
    r: &'a NewRecord,
) -> (
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'static str,
    &'a str,
    i64,
    i64,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
) {
    (
        r.id.as_str(),
        org.as_str(),
        r.record.id.as_deref(),
        r.record.device_id.as_str(),
        r.record.kind.as_str(),
        r.record.property.as_str(),
        r.record.timestamp,
        r.record.received_at,
        r.body.as_str(),
        r.source.as_ref().map(|s| s.id()),
        r.source.as_ref().and_then(|s| s.message_id()),
    )
}

/// Message log entries; one whose source id the integration logged before
/// is not inserted (the caller logs it as a duplicate).
pub(crate) static MESSAGES: Insert = Insert::new(
    "ingress_messages",
    &[
        "id",
        "org_id",
        "integration_id",
        "received_at",
        "source_ref",
        "source_id",
        "attributes",
        "outcome",
        "reason",
        "record_ids",
        "payload",
        "payload_encoding",
        "payload_size",
    ],
    " ON CONFLICT (integration_id, source_id) DO NOTHING",
);

/// A message's values, in [`MESSAGES`]' order: `duplicate` logs it as a
/// duplicate (without its source id, with no records).
pub(crate) fn message_values(org: &OrgId, m: &NewMessage, records: &str, duplicate: bool) -> Vec<Arg> {
    let p = message_params(org, m, records, duplicate);
    vec![
        p.0.into(),
        p.1.into(),
        p.2.into(),
        p.3.into(),
        p.4.into(),
        p.5.into(),
        p.6.into(),
        p.7.into(),
        p.8.into(),
        p.9.into(),
        p.10.into(),
        p.11.into(),
        p.12.into(),
    ]
}

/// The same values for the SQLite round, borrowed.
#[allow(clippy::type_complexity)]
pub(crate) fn message_params<'a>(
    org: &'a OrgId,
    m: &'a NewMessage,
    records: &'a str,
    duplicate: bool,
) -> (
    &'a str,
    &'a str,
    &'a str,
    i64,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'static str,
    Option<&'a str>,
    &'a str,
    &'a str,
    &'static str,
    i64,
) {
    use switchyard_core::MessageOutcome;
    let (source_id, outcome, reason, records) = if duplicate {
        (None, MessageOutcome::Duplicate, Some("seen before: its records are stored already"), "[]")
    } else {
        (m.source_id.as_deref(), m.outcome, m.reason.as_deref(), records)
    };
    (
        m.id.as_str(),
        org.as_str(),
        m.integration_id.as_str(),
        m.received_at,
        m.source_ref.as_str(),
        source_id,
        m.attributes.as_str(),
        outcome.as_str(),
        reason,
        records,
        m.payload.as_str(),
        m.payload_encoding,
        m.payload_size as i64,
    )
}

/// A replayed unmapped message's new outcome: `$1` outcome, `$2` reason,
/// `$3` record ids, `$4` its id (once: a second replay changes nothing).
pub(crate) const REPLAY: &str = "UPDATE ingress_messages SET outcome = $1, reason = $2, record_ids = $3 \
                                 WHERE id = $4 AND outcome = 'unmapped'";

/// A receiver's progress, the latest value per (integration, name); one
/// statement may name each pair once.
pub(crate) static PROGRESS: Insert = Insert::new(
    "ingress_progress",
    &["org_id", "integration_id", "name", "value", "updated_at"],
    " ON CONFLICT (integration_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
);

/// A progress row's values, in [`PROGRESS`]' order.
pub(crate) fn progress_values(org: &OrgId, integration: &str, name: &str, value: &str, now: i64) -> Vec<Arg> {
    vec![org.as_str().into(), integration.into(), name.into(), value.into(), now.into()]
}

/// The progress the batches' messages carry (none of fenced ones), the
/// last value of each (integration, name).
pub(crate) fn progress_of<'a>(
    batches: impl Iterator<Item = &'a crate::Batch>,
) -> Vec<(&'a OrgId, &'a str, &'a str, &'a str)> {
    let mut latest: Vec<(&OrgId, &str, &str, &str)> = Vec::new();
    for batch in batches {
        let Some(m) = &batch.message else { continue };
        for (name, value) in &m.progress {
            let key = (m.integration_id.as_str(), name.as_str());
            match latest.iter_mut().find(|(_, i, n, _)| (*i, *n) == key) {
                Some(found) => found.3 = value,
                None => latest.push((&batch.org, key.0, key.1, value)),
            }
        }
    }
    latest
}

/// The ids of a batch's records, as a message's `record_ids`.
pub(crate) fn record_ids<'a>(records: impl Iterator<Item = &'a NewRecord>) -> String {
    let ids: Vec<&str> = records.map(|r| r.id.as_str()).collect();
    serde_json::to_string(&ids).expect("strings serialise")
}

/// Pending deliveries, due at once (or when the lease they are written with ends).
pub(crate) static DELIVERIES: Insert = Insert::new(
    "deliveries",
    &[
        "id",
        "org_id",
        "integration_id",
        "record_id",
        "status",
        "attempts",
        "retry_from",
        "next_attempt_at",
        "lease_until",
        "created_at",
        "updated_at",
        "action_id",
    ],
    "",
);

/// A new delivery's values, in [`DELIVERIES`]' order. `lease_until` > 0
/// leases it to this node already; it is then due when that lease ends.
pub(crate) fn delivery_values(
    org: &OrgId,
    d: &NewDelivery,
    record: &RecordId,
    action: Option<&ActionId>,
    now: i64,
) -> Vec<Arg> {
    vec![
        (&d.id).into(),
        org.into(),
        (&d.integration_id).into(),
        record.into(),
        DeliveryStatus::Pending.as_str().into(),
        0i64.into(),
        0i64.into(),
        now.max(d.lease_until).into(),
        d.lease_until.into(),
        now.into(),
        now.into(),
        action.map(|a| a.as_str()).into(),
    ]
}

/// The same values for the SQLite round (which never writes an action's).
#[allow(clippy::type_complexity)]
pub(crate) fn delivery_params<'a>(
    org: &'a OrgId,
    d: &'a NewDelivery,
    record: &'a RecordId,
    now: i64,
) -> (&'a str, &'a str, &'a str, &'a str, &'static str, i64, i64, i64, i64, i64, i64, Option<&'a str>) {
    let pending = DeliveryStatus::Pending.as_str();
    (
        d.id.as_str(),
        org.as_str(),
        d.integration_id.as_str(),
        record.as_str(),
        pending,
        0,
        0,
        now.max(d.lease_until),
        d.lease_until,
        now,
        now,
        None,
    )
}

/// A delivery's state after an attempt: the attempt on its row (columns
/// set from the values of the same names; `lease_until` ends). A result
/// older than the delivery's latest attempt changes nothing.
const STATE_COLUMNS: &[&str] = &[
    "status",
    "attempts",
    "next_attempt_at",
    "updated_at",
    "completed_at",
    "target",
    "last_error",
    "last_started_at",
    "last_duration_ms",
    "last_outcome",
    "last_status_code",
    "last_remote_id",
    "last_excerpt",
    "last_sent",
];

/// For sqlx: `WITH v (id, columns) AS (VALUES ` … rows … then [`states_tail`].
pub(crate) fn states_head() -> String {
    format!("WITH v (id, {}) AS (VALUES ", STATE_COLUMNS.join(", "))
}

pub(crate) fn states_tail() -> &'static str {
    static TAIL: OnceLock<String> = OnceLock::new();
    TAIL.get_or_init(|| {
        let set: Vec<String> = STATE_COLUMNS.iter().map(|c| format!("{c} = v.{c}")).collect();
        format!(
            ") UPDATE deliveries SET {}, lease_until = 0 FROM v \
             WHERE deliveries.id = v.id AND deliveries.attempts <= v.attempts",
            set.join(", ")
        )
    })
}

/// For the SQLite round: one delivery, `?1` its id.
pub(crate) fn states_one_row() -> &'static str {
    static ONE: OnceLock<String> = OnceLock::new();
    ONE.get_or_init(|| {
        let set: Vec<String> = STATE_COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 2)).collect();
        format!("UPDATE deliveries SET {}, lease_until = 0 WHERE id = ?1 AND attempts <= ?3", set.join(", "))
    })
}

/// A completion's values: the delivery's id, then [`STATE_COLUMNS`]' order.
pub(crate) fn state_values(c: &Completion) -> Vec<Arg> {
    let a = &c.attempt;
    let state = new_state(c);
    vec![
        (&c.id).into(),
        c.status.as_str().into(),
        (a.number as i64).into(),
        state.next_attempt_at.into(),
        state.now.into(),
        state.completed_at.into(),
        a.target.clone().into(),
        state.last_error.into(),
        a.started_at.into(),
        a.duration_ms.into(),
        a.outcome.as_str().into(),
        a.status_code.map(i64::from).into(),
        a.remote_id.clone().into(),
        a.response_excerpt.clone().into(),
        a.sent.clone().into(),
    ]
}

/// The same values for the SQLite round, borrowed.
#[allow(clippy::type_complexity)]
pub(crate) fn state_params(
    c: &Completion,
) -> (
    &str,
    &'static str,
    u32,
    i64,
    i64,
    Option<i64>,
    Option<&str>,
    Option<&str>,
    i64,
    i64,
    &'static str,
    Option<u16>,
    Option<&str>,
    Option<&str>,
    Option<&str>,
) {
    let a = &c.attempt;
    let state = new_state(c);
    (
        c.id.as_str(),
        c.status.as_str(),
        a.number,
        state.next_attempt_at,
        state.now,
        state.completed_at,
        a.target.as_deref(),
        state.last_error,
        a.started_at,
        a.duration_ms,
        a.outcome.as_str(),
        a.status_code,
        a.remote_id.as_deref(),
        a.response_excerpt.as_deref(),
        a.sent.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_statement_binds_as_many_values_as_it_has_columns() {
        assert_eq!(RECORDS.one_row().matches('?').count(), RECORDS.columns.len());
        assert_eq!(RECORDS.columns.len(), 11, "record_values and record_params bind 11");
        assert_eq!(DELIVERIES.columns.len(), 12, "delivery_values and delivery_params bind 12");
        assert_eq!(MESSAGES.columns.len(), 13, "message_values and message_params bind 13");
        assert_eq!(
            states_one_row().matches('?').count(),
            STATE_COLUMNS.len() + 2,
            "the id, then each column; ?3 twice"
        );
        assert!(states_one_row().contains("attempts = ?3"), "?3 is the attempt number");
        assert!(states_tail().contains("last_sent = v.last_sent, lease_until = 0 FROM v"));
    }
}
