//! The comparison a simulation ends with: a summary per policy, as a terminal table and as
//! JSON (`--json`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::engine::{Bucket, RunResult, SimParams};
use super::workload::Workload;
use crate::tuning::Tuning;

/// The whole comparison (`--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub workload: String,
    pub workload_seconds: usize,
    pub seed: u64,
    pub interval_seconds: f64,
    pub cold_start_seconds: f64,
    pub sla_latency_seconds: f64,
    pub service_rate_per_pod: f64,
    pub policies: Vec<Summary>,
}

/// One policy's results.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub policy: String,
    /// Replica-seconds paid for (starting replicas included).
    pub pod_seconds: f64,
    pub mean_replicas: f64,
    pub peak_replicas: u32,
    pub requests: u64,
    /// Served requests that waited longer than the SLA.
    pub sla_violations: u64,
    /// Requests the full queue refused.
    pub rejected: u64,
    /// (violations + rejected) / requests × 100.
    pub sla_violation_percent: f64,
    pub latency_ms: Percentiles,
    pub scale_events: u32,
    /// (seconds, replicas) at the start and after each scaling.
    pub replicas: Vec<(f64, u32)>,
    pub buckets: Vec<Bucket>,
}

/// Latency percentiles in milliseconds (queue wait + service).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    pub fn new(r: &RunResult) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let h = &r.latency;
        let latency = if h.is_empty() {
            Percentiles {
                p50: 0.0,
                p95: 0.0,
                p99: 0.0,
                max: 0.0,
                mean: 0.0,
            }
        } else {
            Percentiles {
                p50: ms(h.value_at_quantile(0.50)),
                p95: ms(h.value_at_quantile(0.95)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
                mean: h.mean() / 1000.0,
            }
        };
        let bad = r.sla_violations + r.rejected;
        Self {
            policy: r.policy.to_string(),
            pod_seconds: r.pod_seconds,
            mean_replicas: r.pod_seconds / r.duration_seconds.max(1.0),
            peak_replicas: r.peak_replicas,
            requests: r.requests,
            sla_violations: r.sla_violations,
            rejected: r.rejected,
            sla_violation_percent: if r.requests == 0 {
                0.0
            } else {
                100.0 * bad as f64 / r.requests as f64
            },
            latency_ms: latency,
            scale_events: r.scale_events,
            replicas: r.replicas.clone(),
            buckets: r.buckets.clone(),
        }
    }
}

/// A length of time for people: seconds, minutes or hours.
pub fn span(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7_200.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

impl Report {
    pub fn new(
        path: &Path,
        workload: &Workload,
        tuning: &Tuning,
        params: &SimParams,
        results: &[RunResult],
    ) -> Self {
        Self {
            workload: path.display().to_string(),
            workload_seconds: workload.seconds(),
            seed: params.seed,
            interval_seconds: params.interval.as_secs_f64(),
            cold_start_seconds: params.cold_start.as_secs_f64(),
            sla_latency_seconds: params.sla_latency.as_secs_f64(),
            service_rate_per_pod: tuning.decision.service_rate_per_pod,
            policies: results.iter().map(Summary::new).collect(),
        }
    }

    /// The comparison table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ({}), SLA: wait ≤ {} s, cold start {} s, seed {}",
            self.workload,
            span(self.workload_seconds as f64),
            self.sla_latency_seconds,
            self.cold_start_seconds,
            self.seed
        );
        let _ = writeln!(
            out,
            "{:<12} {:>10} {:>6} {:>5} {:>10} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>7}",
            "policy",
            "pod-hours",
            "mean",
            "peak",
            "requests",
            "over SLA",
            "over %",
            "refused",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "scales"
        );
        for s in &self.policies {
            let _ = writeln!(
                out,
                "{:<12} {:>10.2} {:>6.1} {:>5} {:>10} {:>10} {:>8.3} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>7}",
                s.policy,
                s.pod_seconds / 3600.0,
                s.mean_replicas,
                s.peak_replicas,
                s.requests,
                s.sla_violations,
                s.sla_violation_percent,
                s.rejected,
                s.latency_ms.p50,
                s.latency_ms.p95,
                s.latency_ms.p99,
                s.scale_events
            );
        }
        out
    }
}
