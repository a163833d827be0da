//! Asynchronous actions on an integration: accepted at once (202), run in
//! the background, their status and progress kept in the store.
//!
//! - `test-send`: one sample record straight to the target, bypassing
//!   triggers and retries; the attempt is in the action and the delivery log.
//! - `backfill` (egress): stored records of a time range that match the
//!   integration's triggers are delivered again, through the outbox and its
//!   rate limit.
//! - `backfill` (polled ingress): the source's records of a past range are
//!   fetched and stored, by the integration's own receiver between its
//!   polls (`switchyard_connectors::poll`); a restart resumes it.
//! - `replay-unmapped` (ingress): the messages its log keeps as unmapped are
//!   run again, after mappings were added; those that now map are stored
//!   and their entries say so; the rest stay unmapped.
use std::sync::Arc;

use serde_json::{json, Map, Value};
use switchyard_core::{
    now_ms, Action, ActionId, ActionStatus, DeliveryId, DeliveryStatus, DeviceId, Direction, Integration, OrgId,
    Record, RecordKind, ValidationErrors,
};
use switchyard_store::{Claimed, NewRecord, StoreError};

use crate::router::RouteTable;
use crate::Engine;

pub const TEST_SEND: &str = "test-send";
pub const BACKFILL: &str = "backfill";
pub const REPLAY_UNMAPPED: &str = "replay-unmapped";

/// Records read per page while backfilling.
const PAGE: usize = 500;
/// An egress backfill covers at most this long a range.
const MAX_RANGE_MS: i64 = 366 * 24 * 3600 * 1000;
/// A polled source's backfill covers at most this long a range.
const MAX_SOURCE_RANGE_MS: i64 = 10 * 366 * 24 * 3600 * 1000;

/// The actions an integration offers.
pub fn available(integration: &Integration) -> &'static [&'static str] {
    match integration.direction {
        Direction::Egress => &[TEST_SEND, BACKFILL],
        Direction::Ingress if switchyard_connectors::poll::is_polled(&integration.type_key) => {
            &[REPLAY_UNMAPPED, BACKFILL]
        }
        Direction::Ingress => &[REPLAY_UNMAPPED],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("`{0}` is not an action of this integration")]
    Unknown(String),
    #[error("invalid parameters")]
    Invalid(ValidationErrors),
    /// It cannot run in the integration's state.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum Plan {
    /// `device_given`: the caller named the device, which must then exist.
    TestSend {
        record: Box<Record>,
        device_given: bool,
    },
    Backfill {
        from: i64,
        to: i64,
    },
    ReplayUnmapped,
}

fn plan(kind: &str, params: &Map<String, Value>, max_range: i64) -> Result<Plan, ActionError> {
    let mut errors = ValidationErrors::default();
    let known: &[&str] = match kind {
        TEST_SEND => &["deviceId", "kind", "property", "payload"],
        BACKFILL => &["from", "to"],
        REPLAY_UNMAPPED => &[],
        other => return Err(ActionError::Unknown(other.to_owned())),
    };
    for key in params.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(key.clone(), format!("unknown parameter; {kind} takes: {}", known.join(", ")));
    }
    let plan = if kind == REPLAY_UNMAPPED {
        Plan::ReplayUnmapped
    } else if kind == TEST_SEND {
        let placeholder = || DeviceId::from_stored(format!("{}{}", "dev_", "0".repeat(26)));
        let device = match params.get("deviceId") {
            Some(Value::String(raw)) => DeviceId::parse(raw).unwrap_or_else(|e| {
                errors.push("deviceId", e.to_string());
                placeholder()
            }),
            Some(_) => {
                errors.push("deviceId", "must be a device id (a string)");
                placeholder()
            }
            None => placeholder(),
        };
        let record_kind = match params.get("kind").and_then(Value::as_str) {
            Some(k) => RecordKind::parse(k).unwrap_or_else(|| {
                errors.push("kind", "must be value, event or alarm");
                RecordKind::Value
            }),
            None => RecordKind::Value,
        };
        let now = now_ms();
        let property = match params.get("property") {
            None => "switchyard_test".to_owned(),
            Some(Value::String(p)) => {
                switchyard_core::draft::check_text(|| "property".into(), Some(p), true, &mut errors);
                p.clone()
            }
            Some(_) => {
                errors.push("property", "must be a string");
                String::new()
            }
        };
        let payload = params.get("payload").cloned().unwrap_or_else(|| json!({"test": true}));
        let record = Record {
            name: Some("Switchyard test send".into()),
            tags: [("switchyard".to_owned(), "test-send".to_owned())].into(),
            ..Record::new(record_kind, device, property, now, payload)
        };
        Plan::TestSend { record: Box::new(record), device_given: params.contains_key("deviceId") }
    } else {
        let time = |name: &str, errors: &mut ValidationErrors| match params.get(name) {
            Some(v) => v.as_i64().filter(|t| *t >= 0).or_else(|| {
                errors.push(name, "must be a time in ms since the epoch");
                None
            }),
            None => {
                errors.push(name, "is required (ms since the epoch)");
                None
            }
        };
        let (from, to) = (time("from", &mut errors), time("to", &mut errors));
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                errors.push("to", "must be after from");
            } else if t - f > max_range {
                errors.push("to", format!("the range may cover at most {} days", max_range / (24 * 3600 * 1000)));
            }
        }
        Plan::Backfill { from: from.unwrap_or(0), to: to.unwrap_or(0) }
    };
    errors.into_result().map_err(ActionError::Invalid)?;
    Ok(plan)
}

impl Engine {
    /// Validates and records an action, starts it, and returns it (queued).
    pub async fn start_action(
        self: &Arc<Self>,
        integration: &Integration,
        kind: &str,
        params: Map<String, Value>,
    ) -> Result<Action, ActionError> {
        if !available(integration).contains(&kind) {
            return Err(ActionError::Unknown(kind.to_owned()));
        }
        let polled = integration.direction == Direction::Ingress;
        let plan = plan(kind, &params, if polled { MAX_SOURCE_RANGE_MS } else { MAX_RANGE_MS })?;
        if polled && matches!(plan, Plan::Backfill { .. }) && !integration.enabled {
            return Err(ActionError::Conflict("the integration is disabled: enable it to backfill".into()));
        }
        if let Plan::TestSend { record, device_given: true } = &plan {
            // Another organization's device (or none) is not found here.
            if self.router.ancestry(&integration.org_id, &record.device_id).await?.is_empty() {
                let errors = ValidationErrors::one("deviceId", format!("no device `{}`", record.device_id));
                return Err(ActionError::Invalid(errors));
            }
        }
        let now = now_ms();
        let action = Action {
            id: ActionId::new(),
            integration_id: integration.id.clone(),
            kind: kind.to_owned(),
            status: ActionStatus::Queued,
            params: Value::Object(params),
            progress: json!({}),
            result: None,
            error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        self.store.create_action(&integration.org_id, &action).await?;
        if polled && matches!(plan, Plan::Backfill { .. }) {
            // The integration's receiver runs it, between its polls.
            self.ingress.backfill_asked(&integration.id);
            return Ok(action);
        }
        let (engine, integration, started) = (self.clone(), integration.clone(), action.clone());
        tokio::spawn(async move {
            let org = integration.org_id.clone();
            let mut action = started;
            action.status = ActionStatus::Running;
            let outcome = match engine.store.update_action(&org, &action).await {
                Ok(true) => match plan {
                    Plan::TestSend { record, .. } => engine.test_send(&integration, &mut action, *record).await,
                    Plan::Backfill { from, to } => engine.backfill(&integration, &mut action, from, to).await,
                    Plan::ReplayUnmapped => engine.replay_unmapped(&integration, &mut action).await,
                },
                // Cancelled before it started.
                Ok(false) => return,
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                tracing::error!(action = %action.id, error = %e, "action failed");
                action.status = ActionStatus::Failed;
                action.error = Some(e.to_string());
            }
            action.updated_at = now_ms();
            action.finished_at = Some(action.updated_at);
            if let Err(e) = engine.store.update_action(&org, &action).await {
                tracing::error!(action = %action.id, error = %e, "recording the action's end failed");
            }
        });
        Ok(action)
    }

    async fn test_send(
        &self,
        integration: &Integration,
        action: &mut Action,
        record: Record,
    ) -> Result<(), StoreError> {
        let globals = self.store.get_globals(&integration.org_id).await?;
        let egress = match crate::dispatcher::build_sender(&*self.store, &self.egress, integration, &globals).await {
            Ok(e) => e,
            Err(crate::dispatcher::SenderError::Store(e)) => return Err(e),
            Err(e) => {
                action.status = ActionStatus::Failed;
                action.error = Some(e.to_string());
                return Ok(());
            }
        };
        let new = NewRecord::new(record, vec![]);
        let claimed = Claimed {
            id: DeliveryId::new(),
            org_id: integration.org_id.clone(),
            integration_id: integration.id.clone(),
            attempts: 0,
            retry_from: 0,
            created_at: now_ms(),
            body: new.body.clone(),
            record: Some(std::sync::Arc::new(new.record.clone())),
            lease_until: 0,
        };
        let (mut completion, _) = crate::dispatcher::attempt(&*egress, &claimed, 1.0).await;
        // A test send is tried once: it reports, it does not retry.
        if completion.status != DeliveryStatus::Succeeded {
            completion.status = DeliveryStatus::Dead;
            completion.next_attempt_at = None;
        }
        self.store.record_test_send(&integration.org_id, &new, &integration.id, &action.id, &completion).await?;
        let a = &completion.attempt;
        let delivered = completion.status == DeliveryStatus::Succeeded;
        action.result = Some(json!({
            "deliveryId": completion.id, "delivered": delivered, "statusCode": a.status_code,
            "error": a.error, "target": a.target, "durationMs": a.duration_ms,
        }));
        action.status = if delivered { ActionStatus::Succeeded } else { ActionStatus::Failed };
        action.error = if delivered { None } else { a.error.clone().or_else(|| Some("not delivered".into())) };
        Ok(())
    }

    async fn replay_unmapped(&self, integration: &Integration, action: &mut Action) -> Result<(), StoreError> {
        let org = &integration.org_id;
        let decoder = match switchyard_connectors::decode::Decoder::of(integration) {
            Ok(d) => d,
            Err(e) => {
                action.status = ActionStatus::Failed;
                action.error = Some(e.to_string());
                return Ok(());
            }
        };
        let order = tokio::sync::Mutex::new(());
        let filter = switchyard_store::MessageFilter { outcome: Some(switchyard_core::MessageOutcome::Unmapped) };
        let mut page = switchyard_store::PageRequest { limit: 200, after: None };
        let (mut replayed, mut unmapped, mut cut) = (0u64, 0u64, 0u64);
        loop {
            let found = self.store.list_messages(org, &integration.id, &filter, &page).await?;
            for logged in &found.items {
                let Some(payload) = logged.payload_bytes() else {
                    cut += 1;
                    continue;
                };
                let message = switchyard_core::InboundMessage {
                    source_ref: logged.source_ref.clone(),
                    dedup_key: logged.source_id.clone(),
                    attributes: logged.attributes.clone(),
                    payload,
                    received_at: logged.received_at,
                    progress: vec![],
                };
                let replay = Some(logged.id.clone());
                let stored =
                    match self.store_message(org, &integration.id, &decoder, message, &order, replay, None).await {
                        Ok(committing) => committing.await,
                        Err(e) => Err(e),
                    };
                match stored.map_err(|e| match e {
                    crate::IngestError::Store(e) => e,
                    other => StoreError::Corrupt(other.to_string()),
                })? {
                    crate::Received { outcome: switchyard_core::MessageOutcome::Stored, .. } => replayed += 1,
                    _ => unmapped += 1,
                }
            }
            action.progress = json!({"replayed": replayed, "stillUnmapped": unmapped, "payloadCut": cut});
            action.updated_at = now_ms();
            if !self.store.update_action(org, action).await? {
                return Ok(()); // cancelled: what is replayed stays replayed
            }
            match found.next_cursor {
                Some(c) => page.after = Some(c),
                None => break,
            }
        }
        action.status = ActionStatus::Succeeded;
        action.result = Some(json!({"replayed": replayed, "stillUnmapped": unmapped, "payloadCut": cut}));
        Ok(())
    }

    async fn backfill(
        &self,
        integration: &Integration,
        action: &mut Action,
        from: i64,
        to: i64,
    ) -> Result<(), StoreError> {
        let org: &OrgId = &integration.org_id;
        let mut triggers = Vec::new();
        let mut page = switchyard_store::PageRequest { limit: 200, after: None };
        loop {
            let p = self.store.list_triggers(org, &integration.id, &page).await?;
            triggers.extend(p.items);
            match p.next_cursor {
                Some(c) => page.after = Some(c),
                None => break,
            }
        }
        let objects = switchyard_connectors::shared::objects(integration).map(|o| (integration.id.clone(), o));
        let table = RouteTable::build(&triggers, objects.into_iter().collect());
        let (mut scanned, mut matched) = (0u64, 0u64);
        let mut after = None;
        loop {
            let records = self.store.records_between(org, from, to, after.clone(), PAGE).await?;
            let Some((last_id, last)) = records.last() else { break };
            after = Some((last.timestamp, last_id.clone()));
            let mut selected = Vec::new();
            for (id, record) in &records {
                let ancestry = self.router.ancestry(org, &record.device_id).await?;
                if table.route(record, &ancestry).contains(&integration.id) {
                    selected.push(id.clone());
                }
            }
            scanned += records.len() as u64;
            matched += self.store.enqueue(org, &integration.id, &selected, &action.id, now_ms()).await? as u64;
            self.wake.wake();
            action.progress = json!({"scanned": scanned, "matched": matched});
            action.updated_at = now_ms();
            if !self.store.update_action(org, action).await? {
                return Ok(()); // cancelled: what is enqueued stays enqueued
            }
            if records.len() < PAGE {
                break;
            }
        }
        action.status = ActionStatus::Succeeded;
        action.result = Some(json!({"scanned": scanned, "enqueued": matched}));
        Ok(())
    }
}
