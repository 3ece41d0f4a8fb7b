//! What a sweep prints (a table per policy, the comparisons, the forecast accuracy) and writes
//! as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::accuracy::Accuracy;
use super::dominance::{Point, undominated};
use crate::policy::PolicySpec;
use crate::simulate::engine::SimParams;
use crate::simulate::{Workload, span};

/// The whole sweep (`--json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub workload: String,
    pub workload_seconds: usize,
    pub seed: u64,
    pub interval_seconds: f64,
    pub cold_start_seconds: f64,
    pub sla_latency_seconds: f64,
    /// The predictive forecaster's MASE at the cold-start horizon.
    pub forecast_accuracy: Accuracy,
    pub policies: Vec<PolicyFrontier>,
    /// `predictive` against every other policy swept.
    pub comparisons: Vec<Comparison>,
}

/// One policy's points.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyFrontier {
    pub policy: String,
    /// The tuning key the sweep varies.
    pub knob: &'static str,
    /// One point per knob value, cheapest setting first; predictive's also holds the margins
    /// the search found (`refined`), in knob order.
    pub frontier: Vec<Point>,
    /// The run at the tuning as given (`knob` is 0 there).
    pub at_defaults: Option<Point>,
    #[serde(skip)]
    pub spec: Option<PolicySpec>,
}

impl PolicyFrontier {
    pub fn new(spec: PolicySpec, knob: &'static str) -> Self {
        let policy = match spec {
            PolicySpec::Static(_) => "static".to_owned(),
            other => other.to_string(),
        };
        Self {
            policy,
            knob,
            frontier: Vec::new(),
            at_defaults: None,
            spec: Some(spec),
        }
    }
}

/// Whether `policy`'s frontier dominates `other`'s.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub policy: String,
    pub other: String,
    /// Every point of `other` is dominated by a point of `policy`.
    pub dominates: bool,
    /// The points of `other` no point of `policy` dominates, refined points included.
    pub undominated: Vec<Point>,
    /// The points of `other` no grid point of `policy` dominates (before the search).
    pub undominated_on_grid: Vec<Point>,
    /// `policy`'s scale events over `other`'s, both at the tuning as given.
    pub scale_event_ratio_at_defaults: Option<f64>,
}

impl SweepReport {
    pub fn new(
        path: &Path,
        workload: &Workload,
        params: &SimParams,
        forecast_accuracy: Accuracy,
        policies: Vec<PolicyFrontier>,
    ) -> Self {
        let comparisons = match policies
            .iter()
            .find(|p| p.spec == Some(PolicySpec::Predictive))
        {
            Some(ours) => policies
                .iter()
                .filter(|p| p.spec != Some(PolicySpec::Predictive))
                .map(|other| compare(ours, other))
                .collect(),
            None => Vec::new(),
        };
        Self {
            workload: path.display().to_string(),
            workload_seconds: workload.seconds(),
            seed: params.seed,
            interval_seconds: params.interval.as_secs_f64(),
            cold_start_seconds: params.cold_start.as_secs_f64(),
            sla_latency_seconds: params.sla_latency.as_secs_f64(),
            forecast_accuracy,
            policies,
            comparisons,
        }
    }

    /// The tables for the terminal: one block per policy, then the comparisons.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let a = &self.forecast_accuracy;
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
            "forecast MASE at {} intervals ahead: {} (forecast error {:.2}/s, naive {:.2}/s; < 1 beats naive)",
            a.horizon_intervals,
            a.mase.map_or("n/a".to_owned(), |m| format!("{m:.3}")),
            a.forecast_mae,
            a.naive_mae
        );
        for p in &self.policies {
            let _ = writeln!(
                out,
                "\n{:<12} {:>24} {:>10} {:>10} {:>7}",
                p.policy, p.knob, "pod-hours", "over SLA", "scales"
            );
            let rows = p.frontier.iter().map(|pt| {
                let mark = if pt.refined { " (searched)" } else { "" };
                (format!("{:.3}{mark}", pt.knob), pt)
            });
            let defaults = p.at_defaults.iter().map(|pt| ("as tuned".to_owned(), pt));
            for (knob, pt) in rows.chain(defaults) {
                let _ = writeln!(
                    out,
                    "{:<12} {:>24} {:>10.2} {:>10} {:>7}",
                    "",
                    knob,
                    pt.pod_seconds / 3600.0,
                    pt.sla_violations,
                    pt.scale_events
                );
            }
        }
        for c in &self.comparisons {
            let _ = writeln!(out);
            if c.dominates {
                let _ = write!(out, "{} dominates {}", c.policy, c.other);
            } else {
                let knobs: Vec<String> = c
                    .undominated
                    .iter()
                    .map(|p| format!("{:.3}", p.knob))
                    .collect();
                let _ = write!(
                    out,
                    "{} does NOT dominate {}: undominated at {}",
                    c.policy,
                    c.other,
                    knobs.join(", ")
                );
            }
            if c.undominated_on_grid.len() > c.undominated.len() {
                let _ = write!(
                    out,
                    " ({} undominated by the grid alone)",
                    c.undominated_on_grid.len()
                );
            }
            if let Some(r) = c.scale_event_ratio_at_defaults {
                let _ = write!(out, "; scale events at defaults {r:.2}× {}'s", c.other);
            }
            let _ = writeln!(out);
        }
        out
    }
}

fn compare(ours: &PolicyFrontier, other: &PolicyFrontier) -> Comparison {
    let left: Vec<Point> = undominated(&ours.frontier, &other.frontier)
        .into_iter()
        .copied()
        .collect();
    let grid: Vec<Point> = ours
        .frontier
        .iter()
        .filter(|p| !p.refined)
        .copied()
        .collect();
    let on_grid: Vec<Point> = undominated(&grid, &other.frontier)
        .into_iter()
        .copied()
        .collect();
    let ratio = match (ours.at_defaults, other.at_defaults) {
        (Some(a), Some(b)) if b.scale_events > 0 => {
            Some(f64::from(a.scale_events) / f64::from(b.scale_events))
        }
        _ => None,
    };
    Comparison {
        policy: ours.policy.clone(),
        other: other.policy.clone(),
        dominates: left.is_empty(),
        undominated: left,
        undominated_on_grid: on_grid,
        scale_event_ratio_at_defaults: ratio,
    }
}
