//! The autoscaler's own Prometheus metrics, in a per-instance registry (the demo runs the
//! controller next to other services in one process).

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::decision::Direction;

/// Every metric the controller exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub observed_arrival_rate: Gauge,
    pub forecast_arrival_rate: Gauge,
    pub desired_replicas: IntGauge,
    pub current_replicas: IntGauge,
    pub sla_violation_probability: Gauge,
    pub breaker_open: IntGauge,
    pub decisions: IntCounterVec,
    pub decision_duration: Histogram,
    pub telemetry_errors: IntCounterVec,
    pub telemetry_age: Gauge,
    pub scale_errors: IntCounterVec,
    pub large_scale_ups: IntCounter,
    pub state_saves: IntCounterVec,
    pub state_restores: IntCounterVec,
    pub state_last_save: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with the process collector and every autoscaler metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let gauge = |name: &str, help: &str| -> Result<Gauge, prometheus::Error> {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let int_gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let decision_duration = Histogram::with_opts(
            HistogramOpts::new(
                "autoscaler_decision_duration_seconds",
                "Time the policy took to decide, excluding telemetry and scaling I/O.",
            )
            .buckets(vec![
                1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1,
            ]),
        )?;
        registry.register(Box::new(decision_duration.clone()))?;
        let large_scale_ups = IntCounter::new(
            "autoscaler_large_scale_ups_total",
            "Scale-ups that added more replicas at once than --large-scale-up-step.",
        )?;
        registry.register(Box::new(large_scale_ups.clone()))?;
        let metrics = Self {
            observed_arrival_rate: gauge(
                "autoscaler_observed_arrival_rate",
                "Arrival rate observed over the last interval, requests/s.",
            )?,
            forecast_arrival_rate: gauge(
                "autoscaler_forecast_arrival_rate",
                "Arrival rate forecast at the cold-start horizon, requests/s.",
            )?,
            desired_replicas: int_gauge(
                "autoscaler_desired_replicas",
                "Replicas the policy asked for at the last decision.",
            )?,
            current_replicas: int_gauge(
                "autoscaler_current_replicas",
                "Replicas the target had at the last decision.",
            )?,
            sla_violation_probability: gauge(
                "autoscaler_sla_violation_probability",
                "P(queue wait > SLA) at the chosen replica count (M/M/k).",
            )?,
            breaker_open: int_gauge(
                "autoscaler_breaker_open",
                "1 while the telemetry circuit breaker is open (scale-down frozen).",
            )?,
            decisions: counter(
                "autoscaler_decisions_total",
                "Decisions by direction.",
                "direction",
            )?,
            decision_duration,
            telemetry_errors: counter(
                "autoscaler_telemetry_errors_total",
                "Telemetry reads that failed, by source.",
                "source",
            )?,
            telemetry_age: gauge(
                "autoscaler_telemetry_age_seconds",
                "Age of the telemetry the last decision used.",
            )?,
            scale_errors: counter(
                "autoscaler_scale_errors_total",
                "Failed reads or updates of the target's replica count, by code.",
                "code",
            )?,
            large_scale_ups,
            state_saves: counter(
                "autoscaler_state_saves_total",
                "Saves of the forecaster's state, by outcome.",
                "outcome",
            )?,
            state_restores: counter(
                "autoscaler_state_restores_total",
                "Restores of the forecaster's state at start, by outcome.",
                "outcome",
            )?,
            state_last_save: gauge(
                "autoscaler_state_last_save_timestamp_seconds",
                "Unix time of the last successful save of the forecaster's state.",
            )?,
            registry,
        };
        // Pre-create the label values so that dashboards see zeros, not gaps.
        for d in [Direction::Up, Direction::Down, Direction::Hold] {
            metrics.decisions.with_label_values(&[d.as_str()]);
        }
        for outcome in ["ok", "kept_newer", "conflict", "error"] {
            metrics.state_saves.with_label_values(&[outcome]);
        }
        for outcome in [
            "restored",
            "season_only",
            "missing",
            "stale",
            "mismatch",
            "corrupt",
            "unavailable",
        ] {
            metrics.state_restores.with_label_values(&[outcome]);
        }
        Ok(metrics)
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
