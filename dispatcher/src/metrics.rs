//! Prometheus metrics of one dispatcher instance, in its own registry (the local demo runs
//! several services in one process), plus the per-outcome totals `/stats` reports.

use std::collections::BTreeMap;
use std::sync::Mutex;

use harness_core::wire::{DropReason, Outcome};
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Seconds an item waits in the queue: from milliseconds when idle to minutes in a backlog.
const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];
/// Seconds of one upstream attempt (an image classification on a CPU pod).
const UPSTREAM_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric the dispatcher exports (names fixed by the cross-service contract).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub queue_length: IntGauge,
    pub queue_bytes: IntGauge,
    pub enqueued: IntCounter,
    rejected: IntCounterVec,
    completed: IntCounterVec,
    pub queue_wait: Histogram,
    pub upstream_duration: Histogram,
    pub latency: Histogram,
    pub in_flight: IntGauge,
    pub retries: IntCounter,
    pub endpoints: IntGaugeVec,
    pub drain_rate: Gauge,
    /// The outbox of latency records and their delivery, by push and by pull.
    pub delivery: DeliveryMetrics,
    /// The same counts as `rejected` and `completed`, by label, for `/stats`.
    totals: Mutex<Totals>,
}

#[derive(Debug, Default)]
struct Totals {
    rejected: BTreeMap<String, u64>,
    completed: BTreeMap<String, u64>,
}

/// The outbox of latency records and how they leave it.
#[derive(Debug, Clone)]
pub struct DeliveryMetrics {
    /// Failed POSTs to the report URL.
    pub push_failures: IntCounter,
    /// Records delivered by POST to the report URL.
    pub pushed: IntCounter,
    /// Records handed out by `GET /records` (a record handed out again counts again).
    pub pulled: IntCounter,
    /// Records dropped before anyone collected them, by reason.
    pub dropped: IntCounterVec,
    pub outbox_length: IntGauge,
    pub outbox_bytes: IntGauge,
}

impl DeliveryMetrics {
    fn new() -> prometheus::Result<Self> {
        let dropped = IntCounterVec::new(
            Opts::new(
                "dispatcher_report_dropped_total",
                "Latency records dropped before the load tester collected them, by reason \
                 (capacity, retention, refused, shutdown)",
            ),
            &["reason"],
        )?;
        // Every reason from the start, so a rate over the series is 0 rather than absent.
        for reason in DropReason::ALL {
            dropped.with_label_values(&[reason.as_str()]);
        }
        Ok(Self {
            push_failures: IntCounter::new(
                "dispatcher_report_failures_total",
                "Failed POSTs of latency records to the report URL",
            )?,
            pushed: IntCounter::new(
                "dispatcher_reported_total",
                "Latency records delivered to the report URL",
            )?,
            pulled: IntCounter::new(
                "dispatcher_records_pulled_total",
                "Latency records handed out by GET /records",
            )?,
            dropped,
            outbox_length: IntGauge::new(
                "dispatcher_outbox_length",
                "Latency records waiting to be delivered",
            )?,
            outbox_bytes: IntGauge::new(
                "dispatcher_outbox_bytes",
                "Approximate memory held by the latency records waiting to be delivered",
            )?,
        })
    }

    fn register(&self, r: &Registry) -> prometheus::Result<()> {
        r.register(Box::new(self.push_failures.clone()))?;
        r.register(Box::new(self.pushed.clone()))?;
        r.register(Box::new(self.pulled.clone()))?;
        r.register(Box::new(self.dropped.clone()))?;
        r.register(Box::new(self.outbox_length.clone()))?;
        r.register(Box::new(self.outbox_bytes.clone()))
    }

    /// Counts `n` records dropped for `reason`.
    pub fn drop_records(&self, reason: DropReason, n: u64) {
        self.dropped.with_label_values(&[reason.as_str()]).inc_by(n);
    }
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let m = Self {
            queue_length: IntGauge::new("dispatcher_queue_length", "Items waiting in the queue")?,
            queue_bytes: IntGauge::new(
                "dispatcher_queue_bytes",
                "Base64 bytes of the items waiting in the queue",
            )?,
            enqueued: IntCounter::new("dispatcher_enqueued_total", "Items accepted by /enqueue")?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "dispatcher_rejected_total",
                    "Requests /enqueue refused, by reason",
                ),
                &["reason"],
            )?,
            completed: IntCounterVec::new(
                Opts::new(
                    "dispatcher_completed_total",
                    "Items finished, by outcome (ok or an error code)",
                ),
                &["outcome"],
            )?,
            queue_wait: histogram(
                "dispatcher_queue_wait_seconds",
                "Time from enqueue to first dispatch",
                WAIT_BUCKETS,
            )?,
            upstream_duration: histogram(
                "dispatcher_upstream_duration_seconds",
                "Duration of one upstream inference attempt",
                UPSTREAM_BUCKETS,
            )?,
            latency: histogram(
                "dispatcher_latency_seconds",
                "Time from enqueue to completion (queue wait plus every attempt)",
                WAIT_BUCKETS,
            )?,
            in_flight: IntGauge::new(
                "dispatcher_in_flight",
                "Items dispatched and not yet finished (attempts and retry back-off)",
            )?,
            retries: IntCounter::new(
                "dispatcher_retries_total",
                "Upstream attempts after the first",
            )?,
            endpoints: IntGaugeVec::new(
                Opts::new("dispatcher_endpoints", "Inference endpoints by state"),
                &["state"],
            )?,
            drain_rate: Gauge::new("dispatcher_drain_rate", "Configured drain rate (items/s)")?,
            delivery: DeliveryMetrics::new()?,
            totals: Mutex::default(),
            registry,
        };
        m.register_all()?;
        Ok(m)
    }

    fn register_all(&self) -> prometheus::Result<()> {
        let r = &self.registry;
        r.register(Box::new(self.queue_length.clone()))?;
        r.register(Box::new(self.queue_bytes.clone()))?;
        r.register(Box::new(self.enqueued.clone()))?;
        r.register(Box::new(self.rejected.clone()))?;
        r.register(Box::new(self.completed.clone()))?;
        r.register(Box::new(self.queue_wait.clone()))?;
        r.register(Box::new(self.upstream_duration.clone()))?;
        r.register(Box::new(self.latency.clone()))?;
        r.register(Box::new(self.in_flight.clone()))?;
        r.register(Box::new(self.retries.clone()))?;
        r.register(Box::new(self.endpoints.clone()))?;
        r.register(Box::new(self.drain_rate.clone()))?;
        self.delivery.register(r)
    }

    /// Counts a refused `/enqueue` by its error code.
    pub fn reject(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
        *self
            .lock_totals()
            .rejected
            .entry(reason.to_owned())
            .or_default() += 1;
    }

    /// Counts a finished item by outcome. Outcomes are a bounded set: ours, or an inference
    /// error code whose shape the caller has checked (the upstream module does).
    pub fn complete(&self, outcome: &Outcome) {
        let outcome = outcome.as_str();
        self.completed.with_label_values(&[outcome]).inc();
        *self
            .lock_totals()
            .completed
            .entry(outcome.to_owned())
            .or_default() += 1;
    }

    pub fn rejected_totals(&self) -> BTreeMap<String, u64> {
        self.lock_totals().rejected.clone()
    }

    pub fn completed_totals(&self) -> BTreeMap<String, u64> {
        self.lock_totals().completed.clone()
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn lock_totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        harness_core::sync::lock(&self.totals)
    }
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> prometheus::Result<Histogram> {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_instances_do_not_collide_and_totals_match_counters() {
        let a = Metrics::new().expect("metrics");
        let b = Metrics::new().expect("a second instance registers too");
        a.reject("queue_full");
        a.reject("queue_full");
        a.complete(&Outcome::Ok);
        assert_eq!(a.rejected_totals()["queue_full"], 2);
        assert!(b.rejected_totals().is_empty());
        let text = harness_core::http::metrics_text(a.registry()).expect("encode");
        assert!(text.contains("dispatcher_rejected_total{reason=\"queue_full\"} 2"));
        assert!(text.contains("dispatcher_completed_total{outcome=\"ok\"} 1"));
        assert!(text.contains("# TYPE dispatcher_queue_wait_seconds histogram"));
    }
}
