//! Sending a unit of deliveries and deciding, purely, what becomes of each.
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use switchyard_connectors::{Egress, Outbound, Outcome, SendResult};
use switchyard_core::delivery::{excerpt, RESPONSE_EXCERPT_MAX};
use switchyard_core::{now_ms, Attempt, AttemptOutcome, DeliveryStatus, Record, RecordKind};
use switchyard_store::{Claimed, Completion};

use crate::metrics::IntegrationMetrics;
use crate::retry;

/// Sends one delivery and decides what becomes of it.
pub(crate) async fn attempt(egress: &dyn Egress, delivery: &Claimed, retry_scale: f64) -> (Completion, Outcome) {
    attempt_unit(egress, std::slice::from_ref(delivery), retry_scale).await.remove(0)
}

/// Sends a unit of deliveries (one, or a batch) and decides what becomes of
/// each, in the unit's order. A batch goes as one request per record kind
/// (each kind may have its own route), and every delivery in it shares that
/// request's result.
pub(crate) async fn attempt_unit(
    egress: &dyn Egress,
    unit: &[Claimed],
    retry_scale: f64,
) -> Vec<(Completion, Outcome)> {
    let mut out: Vec<Option<(Completion, Outcome)>> = vec![None; unit.len()];
    let mut readable = Vec::with_capacity(unit.len());
    for (i, delivery) in unit.iter().enumerate() {
        let record = match &delivery.record {
            Some(record) => Ok(record.clone()),
            None => serde_json::from_str::<Record>(&delivery.body).map(Arc::new),
        };
        match record {
            Ok(record) => readable.push((i, delivery, record)),
            Err(e) => {
                let result = SendResult {
                    sent: None,
                    outcome: Outcome::Reject {
                        reason: format!("the stored record cannot be read: {e}"),
                        deactivate: false,
                    },
                    response: Default::default(),
                    target: String::new(),
                };
                let timing = Timing { started_at: now_ms(), duration_ms: 0, jitter: jitter(), retry_scale };
                out[i] = Some((decide(delivery, &result, timing), result.outcome));
            }
        }
    }
    for kind in RecordKind::ALL {
        let group: Vec<&(usize, &Claimed, Arc<Record>)> = readable.iter().filter(|(_, _, r)| r.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        let messages: Vec<Outbound<'_>> =
            group.iter().map(|(_, d, record)| Outbound { delivery_id: d.id.as_str(), record, body: &d.body }).collect();
        let started_at = now_ms();
        let clock = Instant::now();
        let result =
            if messages.len() == 1 { egress.send(&messages[0]).await } else { egress.send_batch(&messages).await };
        let duration_ms = clock.elapsed().as_millis() as i64;
        for (i, delivery, _) in group {
            let timing = Timing { started_at, duration_ms, jitter: jitter(), retry_scale };
            out[*i] = Some((decide(delivery, &result, timing), result.outcome.clone()));
        }
    }
    out.into_iter().map(|r| r.expect("every delivery of the unit has a result")).collect()
}

/// What becomes of a delivery after an attempt with this result.
/// When an attempt ran, and the inputs of its retry delay.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub started_at: i64,
    pub duration_ms: i64,
    /// In [-1, 1]: where in the ±20 % band the next delay falls.
    pub jitter: f64,
    /// Multiplies the schedule's delays (1.0 but in tests).
    pub retry_scale: f64,
}

fn jitter() -> f64 {
    rand::thread_rng().gen_range(-1.0..=1.0)
}

/// What becomes of a delivery after an attempt with this result: pure, so
/// the schedule, the jitter, `Retry-After` and its bounds, 410 and the last
/// attempt are tested without a clock or a network.
pub(super) fn decide(delivery: &Claimed, result: &SendResult, timing: Timing) -> Completion {
    let Timing { started_at, duration_ms, jitter, retry_scale } = timing;
    let number = delivery.attempts + 1;
    let made_this_round = number - delivery.retry_from;
    let (outcome, status, next, error) = match &result.outcome {
        Outcome::Delivered => (AttemptOutcome::Delivered, DeliveryStatus::Succeeded, None, None),
        Outcome::Reject { reason, .. } => (AttemptOutcome::Rejected, DeliveryStatus::Dead, None, Some(reason.clone())),
        Outcome::Retry { after, reason } => match retry::next_delay(made_this_round, *after, jitter) {
            Some(delay) => (
                AttemptOutcome::Retry,
                DeliveryStatus::Retrying,
                Some(started_at + duration_ms + scaled(delay, *after, retry_scale).as_millis() as i64),
                Some(reason.clone()),
            ),
            None => (AttemptOutcome::Retry, DeliveryStatus::Dead, None, Some(format!("{reason} (last attempt)"))),
        },
    };
    Completion {
        id: delivery.id.clone(),
        attempt: Attempt {
            number,
            started_at,
            duration_ms,
            outcome,
            status_code: result.response.status,
            remote_id: result.response.remote_id.clone(),
            error: error.map(|e| excerpt(&e, RESPONSE_EXCERPT_MAX)),
            response_excerpt: result.response.excerpt.clone(),
            target: (!result.target.is_empty()).then(|| result.target.clone()),
            sent: result.sent.clone(),
        },
        status,
        next_attempt_at: next,
    }
}

pub(super) fn record_metrics(metrics: &IntegrationMetrics, delivery: &Claimed, c: &Completion) {
    let outcome = match (c.attempt.outcome, c.status) {
        (AttemptOutcome::Delivered, _) => "delivered",
        (_, DeliveryStatus::Dead) if c.attempt.outcome == AttemptOutcome::Retry => "dead",
        (AttemptOutcome::Retry, _) => "retry",
        (AttemptOutcome::Rejected, _) => "rejected",
    };
    metrics.attempt(outcome, c.attempt.duration_ms as f64 / 1000.0);
    if c.status == DeliveryStatus::Succeeded {
        metrics.delivered(now_ms() - delivery.created_at);
    }
}

/// The schedule's delay times the scale; a far side's own `Retry-After` is kept as asked.
fn scaled(delay: Duration, retry_after: Option<Duration>, scale: f64) -> Duration {
    if retry_after.is_some() {
        delay
    } else {
        delay.mul_f64(scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_connectors::Response;
    use switchyard_core::{DeliveryId, IntegrationId, OrgId};

    fn claimed(attempts: u32, retry_from: u32) -> Claimed {
        Claimed {
            id: DeliveryId::new(),
            org_id: OrgId::new(),
            integration_id: IntegrationId::new(),
            attempts,
            retry_from,
            body: "{}".into(),
            record: None,
            created_at: 0,
            lease_until: 0,
        }
    }

    fn result(outcome: Outcome) -> SendResult {
        SendResult { outcome, response: Response::default(), target: "t".into(), sent: None }
    }

    fn retry(after: Option<Duration>) -> SendResult {
        result(Outcome::Retry { after, reason: "HTTP 503".into() })
    }

    const AT: Timing = Timing { started_at: 1_000_000, duration_ms: 50, jitter: 0.0, retry_scale: 1.0 };

    #[test]
    fn delivered_and_rejected_are_final() {
        let c = decide(&claimed(0, 0), &result(Outcome::Delivered), AT);
        assert_eq!((c.status, c.attempt.number, c.next_attempt_at), (DeliveryStatus::Succeeded, 1, None));
        let gone = Outcome::Reject { reason: "410 Gone".into(), deactivate: true };
        let c = decide(&claimed(3, 0), &result(gone), AT);
        assert_eq!((c.status, c.attempt.outcome), (DeliveryStatus::Dead, AttemptOutcome::Rejected));
        assert_eq!((c.attempt.number, c.attempt.error.as_deref()), (4, Some("410 Gone")));
    }

    #[test]
    fn retries_follow_the_schedule_from_the_attempts_end_with_jitter() {
        let c = decide(&claimed(0, 0), &retry(None), AT);
        assert_eq!(c.status, DeliveryStatus::Retrying);
        assert_eq!(c.next_attempt_at, Some(1_000_050 + 5_000), "5 s after the first attempt ended");
        let c = decide(&claimed(1, 0), &retry(None), Timing { jitter: 1.0, ..AT });
        assert_eq!(c.next_attempt_at, Some(1_000_050 + 360_000), "5 min + 20 %");
        let c = decide(&claimed(1, 0), &retry(None), Timing { jitter: -1.0, retry_scale: 0.5, ..AT });
        assert_eq!(c.next_attempt_at, Some(1_000_050 + 120_000), "5 min - 20 %, scaled");
    }

    #[test]
    fn retry_after_is_honoured_within_its_bounds_and_unscaled() {
        let scaled_down = Timing { retry_scale: 0.001, ..AT };
        let c = decide(&claimed(0, 0), &retry(Some(Duration::from_secs(42))), scaled_down);
        assert_eq!(c.next_attempt_at, Some(1_000_050 + 42_000));
        let c = decide(&claimed(0, 0), &retry(Some(Duration::ZERO)), AT);
        assert_eq!(c.next_attempt_at, Some(1_000_050 + 1_000), "at least a second");
        let c = decide(&claimed(0, 0), &retry(Some(Duration::from_secs(u32::MAX as u64))), AT);
        assert_eq!(c.next_attempt_at, Some(1_000_050 + 24 * 3600 * 1000), "at most a day");
    }

    #[test]
    fn the_tenth_failure_of_a_round_is_dead_and_a_resend_starts_a_round() {
        let c = decide(&claimed(9, 0), &retry(None), AT);
        assert_eq!((c.status, c.next_attempt_at), (DeliveryStatus::Dead, None));
        assert!(c.attempt.error.as_deref().unwrap().ends_with("(last attempt)"));
        let c = decide(&claimed(10, 10), &retry(None), AT);
        assert_eq!((c.status, c.attempt.number), (DeliveryStatus::Retrying, 11), "a resent delivery retries anew");
        assert_eq!(c.next_attempt_at, Some(1_000_050 + 5_000));
    }

    #[test]
    fn what_was_sent_and_long_errors_are_kept_bounded() {
        let long = Outcome::Reject { reason: "x".repeat(10_000), deactivate: false };
        let c = decide(&claimed(0, 0), &result(long).with_sent("body"), AT);
        assert_eq!(c.attempt.error.unwrap().len(), RESPONSE_EXCERPT_MAX);
        assert_eq!(c.attempt.sent.as_deref(), Some("body"));
    }
}
