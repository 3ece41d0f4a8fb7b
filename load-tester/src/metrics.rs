//! Prometheus metrics of the load tester, in a per-instance registry (the demo runs a load
//! tester next to other services in one process; the global registry would mix them up).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Schedule lag buckets, in seconds: the interesting range is 100 µs to a few ms; anything
/// beyond a second means the generator could not keep up at all.
const LAG_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Per-outcome counters of `loadtest_enqueue_responses_total`.
#[derive(Debug, Clone)]
pub struct EnqueueOutcomes {
    pub accepted: IntCounter,
    pub rejected: IntCounter,
    pub error: IntCounter,
}

/// The load tester's metrics (names in the contract).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests_sent: IntCounter,
    /// `outcome` = `accepted`, `rejected` or `error`.
    pub enqueue_responses: IntCounterVec,
    /// The three children of `enqueue_responses`, resolved once: the send path skips the
    /// label lookup.
    pub enqueue_outcomes: EnqueueOutcomes,
    pub schedule_lag: Histogram,
    pub records_stored: IntCounter,
    /// Records not stored; `reason` = `duplicate`, `redelivered` or `unmatched`.
    pub records_rejected: IntCounterVec,
    pub run_active: IntGauge,
    /// Bytes written to run journals (`journal.jsonl`).
    pub journal_bytes: IntCounter,
    /// Journal lines lost because the writer's queue was full (each also counted in the
    /// run's `journal.droppedLines`).
    pub journal_lines_dropped: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let enqueue_responses = IntCounterVec::new(
            Opts::new(
                "loadtest_enqueue_responses_total",
                "Answers to /enqueue by outcome (accepted, rejected, error).",
            ),
            &["outcome"],
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let m = Self {
            requests_sent: IntCounter::new(
                "loadtest_requests_sent_total",
                "Requests the generator sent to /enqueue.",
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
            enqueue_outcomes: EnqueueOutcomes {
                accepted: enqueue_responses.with_label_values(&["accepted"]),
                rejected: enqueue_responses.with_label_values(&["rejected"]),
                error: enqueue_responses.with_label_values(&["error"]),
            },
            enqueue_responses,
            schedule_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "loadtest_schedule_lag_seconds",
                    "How late each send started against its intended time.",
                )
                .buckets(LAG_BUCKETS.to_vec()),
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
            records_stored: IntCounter::new(
                "loadtest_records_stored_total",
                "Latency records matched to a request and stored.",
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
            records_rejected: IntCounterVec::new(
                Opts::new(
                    "loadtest_records_rejected_total",
                    "Latency records not stored, by reason (duplicate, redelivered, unmatched).",
                ),
                &["reason"],
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
            run_active: IntGauge::new(
                "loadtest_run_active",
                "1 while a run is sending or waiting for records.",
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
            journal_bytes: IntCounter::new(
                "loadtest_journal_bytes_total",
                "Bytes written to run journals (journal.jsonl).",
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
            journal_lines_dropped: IntCounter::new(
                "loadtest_journal_lines_dropped_total",
                "Journal lines lost because the journal writer fell behind.",
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
            registry,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 8] = [
            Box::new(m.requests_sent.clone()),
            Box::new(m.enqueue_responses.clone()),
            Box::new(m.schedule_lag.clone()),
            Box::new(m.records_stored.clone()),
            Box::new(m.records_rejected.clone()),
            Box::new(m.run_active.clone()),
            Box::new(m.journal_bytes.clone()),
            Box::new(m.journal_lines_dropped.clone()),
        ];
        for collector in collectors {
            m.registry
                .register(collector)
                .unwrap_or_else(|e| unreachable!("names are unique: {e}"));
        }
        #[cfg(target_os = "linux")]
        if let Err(err) = m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::warn!(%err, "process metrics unavailable");
        }
        for reason in ["duplicate", "redelivered", "unmatched"] {
            m.records_rejected.with_label_values(&[reason]);
        }
        m
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_contract_names() {
        let m = Metrics::new();
        m.requests_sent.inc();
        m.schedule_lag.observe(0.0003);
        let text = harness_core::http::metrics_text(m.registry()).unwrap();
        for name in [
            "loadtest_requests_sent_total 1",
            "loadtest_enqueue_responses_total{outcome=\"accepted\"} 0",
            "loadtest_schedule_lag_seconds_bucket{le=\"0.0005\"} 1",
            "loadtest_records_stored_total 0",
            "loadtest_run_active 0",
            "loadtest_journal_bytes_total 0",
            "loadtest_journal_lines_dropped_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
