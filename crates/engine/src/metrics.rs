//! Prometheus metrics, named for what an operator asks: deliveries by
//! integration and outcome, delivery latency, attempt duration, and, read
//! from the store at scrape time so every node reports the same, pending
//! deliveries and the oldest pending age per integration; circuit states;
//! the writer's rounds, and what this node holds in memory for its workers.
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use switchyard_core::{now_ms, IntegrationId};
use switchyard_store::{Store, StoreError};

use crate::dispatcher::Circuits;
use crate::ingress::ConnectionView;
use crate::limits::CircuitState;

type Labels = Vec<(&'static str, String)>;

fn histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    deliveries: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    attempt: Family<Labels, Histogram, fn() -> Histogram>,
    pending: Family<Labels, Gauge>,
    oldest: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    circuit: Family<Labels, Gauge>,
    records: Counter,
    round: Histogram,
    queued: Family<Labels, Gauge>,
    queued_bytes: Gauge,
    queue_budget: Gauge,
    ingress_messages: Family<Labels, Counter>,
    ingress_state: Family<Labels, Gauge>,
    ingress_throttled: Family<Labels, Gauge>,
}

/// What the workers of this node hold, read at scrape time.
pub(crate) struct Queues {
    /// Per integration: deliveries queued or being sent.
    pub per_integration: Vec<(IntegrationId, usize)>,
    /// Memory the queued deliveries take, and the most they may.
    pub bytes: usize,
    pub budget: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let deliveries = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let attempt =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let pending = Family::<Labels, Gauge>::default();
        let oldest = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let circuit = Family::<Labels, Gauge>::default();
        let records = Counter::default();
        // 100 µs to about 3 s.
        let round = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let queued = Family::<Labels, Gauge>::default();
        let (queued_bytes, queue_budget) = (Gauge::default(), Gauge::default());
        let ingress_messages = Family::<Labels, Counter>::default();
        let ingress_state = Family::<Labels, Gauge>::default();
        let ingress_throttled = Family::<Labels, Gauge>::default();
        registry.register(
            "ingress_messages",
            "Messages ingress integrations received on this node, by outcome (received, stored, duplicate, unmapped, \
             decode_error)",
            ingress_messages.clone(),
        );
        registry.register(
            "ingress_connection_state",
            "1 for each ingress integration's connection state on this node (connecting, connected, silent, \
             reconnecting, failed, disabled)",
            ingress_state.clone(),
        );
        registry.register(
            "ingress_throttled",
            "1 while an ingress integration's messages wait for its rate limit",
            ingress_throttled.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts by integration and outcome (delivered, retry, rejected, dead)",
            deliveries.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "From a record's acceptance to its delivery, by integration",
            latency.clone(),
        );
        registry.register("attempt_duration_seconds", "How long one send took, by integration", attempt.clone());
        registry.register(
            "pending_deliveries",
            "Deliveries waiting to be sent (pending or retrying), by integration",
            pending.clone(),
        );
        registry.register(
            "oldest_pending_age_seconds",
            "Age of the oldest waiting delivery, by integration",
            oldest.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker per integration on this node: 0 closed, 1 half-open, 2 open",
            circuit.clone(),
        );
        registry.register("records_accepted", "Telemetry records accepted", records.clone());
        registry.register(
            "write_round_seconds",
            "One round of the writer: the ingest requests and delivery results waiting, in one transaction, on disk",
            round.clone(),
        );
        registry.register(
            "queued_deliveries",
            "Deliveries held in memory on this node for their worker (waiting or being sent), by integration",
            queued.clone(),
        );
        registry.register(
            "queued_bytes",
            "Memory the deliveries waiting in this node's worker queues take",
            queued_bytes.clone(),
        );
        registry.register(
            "queue_budget_bytes",
            "The most the worker queues may take (queue_memory_mb); past it, deliveries wait in the outbox",
            queue_budget.clone(),
        );
        Self {
            registry,
            deliveries,
            latency,
            attempt,
            pending,
            oldest,
            circuit,
            records,
            round,
            queued,
            queued_bytes,
            queue_budget,
            ingress_messages,
            ingress_state,
            ingress_throttled,
        }
    }
}

fn labels(integration: &IntegrationId) -> Labels {
    vec![("integration", integration.to_string())]
}

/// One integration's series, looked up once per worker rather than per delivery.
#[derive(Clone)]
pub(crate) struct IntegrationMetrics {
    /// delivered, retry, rejected, dead
    outcomes: [Counter; 4],
    attempt: Histogram,
    latency: Histogram,
}

const OUTCOMES: [&str; 4] = ["delivered", "retry", "rejected", "dead"];

impl IntegrationMetrics {
    pub(crate) fn attempt(&self, outcome: &'static str, seconds: f64) {
        self.attempt.observe(seconds);
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].inc();
        }
    }

    pub(crate) fn delivered(&self, since_accepted_ms: i64) {
        self.latency.observe(since_accepted_ms.max(0) as f64 / 1000.0);
    }
}

impl Metrics {
    pub(crate) fn for_integration(&self, integration: &IntegrationId) -> IntegrationMetrics {
        let l = labels(integration);
        let outcome = |o: &str| {
            let mut with = l.clone();
            with.push(("outcome", o.to_owned()));
            self.deliveries.get_or_create(&with).clone()
        };
        IntegrationMetrics {
            outcomes: OUTCOMES.map(outcome),
            attempt: self.attempt.get_or_create(&l).clone(),
            latency: self.latency.get_or_create(&l).clone(),
        }
    }

    pub(crate) fn accepted(&self, records: u64) {
        self.records.inc_by(records);
    }

    pub(crate) fn round(&self, took: std::time::Duration) {
        self.round.observe(took.as_secs_f64());
    }

    /// The text exposition, with the store-derived gauges refreshed.
    pub(crate) async fn render(
        &self,
        store: &dyn Store,
        circuits: &Circuits,
        queues: Queues,
        connections: Vec<(IntegrationId, ConnectionView)>,
    ) -> Result<String, StoreError> {
        self.ingress_messages.clear();
        self.ingress_state.clear();
        self.ingress_throttled.clear();
        for (id, c) in connections {
            let with = |k: &'static str, v: &str| {
                let mut l = labels(&id);
                l.push((k, v.to_owned()));
                l
            };
            let n = &c.counters;
            for (outcome, count) in [
                ("received", n.received),
                ("stored", n.stored),
                ("duplicate", n.duplicates),
                ("unmapped", n.unmapped),
                ("decode_error", n.decode_errors),
            ] {
                self.ingress_messages.get_or_create(&with("outcome", outcome)).inc_by(count);
            }
            let state = serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_owned));
            self.ingress_state.get_or_create(&with("state", &state.unwrap_or_default())).set(1);
            self.ingress_throttled.get_or_create(&labels(&id)).set(i64::from(c.throttled));
        }
        self.pending.clear();
        self.oldest.clear();
        let now = now_ms();
        for p in store.pending_summary().await? {
            let l = vec![("integration", p.integration_id.to_string()), ("org", p.org_id.to_string())];
            self.pending.get_or_create(&l).set(p.pending as i64);
            self.oldest.get_or_create(&l).set((now - p.oldest_created_at).max(0) as f64 / 1000.0);
        }
        self.circuit.clear();
        for (id, state) in circuits.states() {
            let v = match state {
                CircuitState::Closed => 0,
                CircuitState::HalfOpen => 1,
                CircuitState::Open => 2,
            };
            self.circuit.get_or_create(&labels(&id)).set(v);
        }
        self.queued.clear();
        for (id, n) in queues.per_integration {
            self.queued.get_or_create(&labels(&id)).set(n as i64);
        }
        self.queued_bytes.set(queues.bytes as i64);
        self.queue_budget.set(queues.budget as i64);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        Ok(out)
    }
}
