//! `autoscaler simulate --sweep`: each policy over a range of its main knob, so that policies
//! are compared by their cost/violation frontiers rather than by one point each (a policy can
//! look better just by sitting at a different cost).
//!
//! Knobs: `hpa` its target utilisation, 0.9 down to 0.5; `predictive` its safety margin, 0.8
//! up to 1.8 (from sizing for less than the forecast to nearly twice it); `queue` its backlog
//! per replica, 4 down to 1/4; `static:N` the count N, from the mean load at full use to the
//! peak at 50 %. Every point is one full run
//! ([`super::engine`]) on the same requests; all of them run in parallel. Each policy but
//! `static:N` also runs once at the tuning as given (its defaults), for the scale-event ratio.
//! When both `hpa` and `predictive` are swept, every HPA point the predictive grid leaves
//! undominated gets a search for a margin between grid values that dominates it (`refine`, at
//! most 8 extra runs per point, also in parallel); the margins found join predictive's frontier,
//! marked `refined`.
//!
//! Layout: `dominance` (points, frontiers, which beats which), `refine` (the search between
//! grid values), `accuracy` (MASE of the forecaster), `plot` (the PNG), `report` (table and
//! JSON).

mod accuracy;
mod dominance;
mod plot;
mod refine;
mod report;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;

pub use accuracy::{Accuracy, mase, observed_rates};
pub use dominance::{Point, undominated};
pub use report::{Comparison, PolicyFrontier, SweepReport};

use super::engine::{self, SimParams};
use super::workload::Workload;
use crate::policy::{PolicySpec, Predictive};
use crate::tuning::Tuning;

/// HPA target utilisations swept.
const LOWEST_UTILISATION: f64 = 0.5;
const HIGHEST_UTILISATION: f64 = 0.9;
/// Predictive safety margins swept.
const LOWEST_MARGIN: f64 = 0.8;
const HIGHEST_MARGIN: f64 = 1.8;

/// A policy's main knob, and how a value of it changes the tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    /// `targetUtilization` of the `hpa` policy.
    TargetUtilization,
    /// `safetyMargin` of the `predictive` policy.
    SafetyMargin,
    /// `queue.targetPerReplica`.
    QueueTarget,
    /// N of `static:N`.
    Replicas,
}

impl Knob {
    pub fn of(spec: PolicySpec) -> Self {
        match spec {
            PolicySpec::Hpa => Knob::TargetUtilization,
            PolicySpec::Predictive => Knob::SafetyMargin,
            PolicySpec::Queue => Knob::QueueTarget,
            PolicySpec::Static(_) => Knob::Replicas,
        }
    }

    /// The name users see (the tuning key).
    pub fn name(self) -> &'static str {
        match self {
            Knob::TargetUtilization => "targetUtilization",
            Knob::SafetyMargin => "safetyMargin",
            Knob::QueueTarget => "queue.targetPerReplica",
            Knob::Replicas => "replicas",
        }
    }

    /// `points` values of the knob, from the cheapest setting to the most generous.
    pub fn values(self, points: usize, tuning: &Tuning, workload: &Workload) -> Vec<f64> {
        let n = points.max(2);
        let spread = |lo: f64, hi: f64| -> Vec<f64> {
            (0..n)
                .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
                .collect()
        };
        let d = &tuning.decision;
        match self {
            Knob::TargetUtilization => spread(HIGHEST_UTILISATION, LOWEST_UTILISATION),
            Knob::SafetyMargin => spread(LOWEST_MARGIN, HIGHEST_MARGIN),
            // Geometric, 4 requests per replica down to 1/4.
            Knob::QueueTarget => spread(4f64.ln(), 0.25f64.ln())
                .iter()
                .map(|x| x.exp())
                .collect(),
            Knob::Replicas => {
                let mu = d.service_rate_per_pod;
                let mean = workload.expected_requests() / workload.seconds().max(1) as f64;
                let peak = workload.rates().iter().copied().fold(0.0, f64::max);
                let lo = (mean / mu).ceil().max(1.0);
                let hi = (peak / (mu * LOWEST_UTILISATION)).ceil().max(lo);
                let mut counts: Vec<f64> = spread(lo, hi).iter().map(|n| n.round()).collect();
                counts.dedup();
                counts
            }
        }
    }

    /// The policy and tuning of one point.
    pub fn apply(self, spec: PolicySpec, value: f64, tuning: &Tuning) -> (PolicySpec, Tuning) {
        let mut t = tuning.clone();
        let spec = match self {
            Knob::TargetUtilization => {
                t.decision.target_utilization = value;
                spec
            }
            Knob::SafetyMargin => {
                t.decision.safety_margin = value;
                spec
            }
            Knob::QueueTarget => {
                t.queue_target_per_replica = value;
                spec
            }
            Knob::Replicas => PolicySpec::Static(value.round() as u32),
        };
        (spec, t)
    }
}

/// One run to make: a policy, its tuning, and where its result goes.
struct Job {
    policy: usize,
    /// `None`: the run at the tuning as given.
    knob: Option<f64>,
    spec: PolicySpec,
    tuning: Tuning,
}

/// Runs every policy at `points` values of its knob, and at the tuning as given.
pub fn sweep(
    path: &Path,
    workload: &Workload,
    policies: &[PolicySpec],
    tuning: &Tuning,
    params: &SimParams,
    points: usize,
) -> SweepReport {
    let mut jobs = Vec::new();
    for (i, &spec) in policies.iter().enumerate() {
        let knob = Knob::of(spec);
        // `static:N` has no defaults: its N is the knob.
        if !matches!(spec, PolicySpec::Static(_)) {
            jobs.push(Job {
                policy: i,
                knob: None,
                spec,
                tuning: tuning.clone(),
            });
        }
        for value in knob.values(points, tuning, workload) {
            let (spec, tuning) = knob.apply(spec, value, tuning);
            jobs.push(Job {
                policy: i,
                knob: Some(value),
                spec,
                tuning,
            });
        }
    }
    let results = run_all(workload, &jobs, params);
    let mut frontiers: Vec<PolicyFrontier> = policies
        .iter()
        .map(|&spec| PolicyFrontier::new(spec, Knob::of(spec).name()))
        .collect();
    for (job, point) in jobs.iter().zip(results) {
        let f = &mut frontiers[job.policy];
        match job.knob {
            Some(knob) => f.frontier.push(Point { knob, ..point }),
            None => f.at_defaults = Some(point),
        }
    }
    refine_predictive(workload, policies, tuning, params, &mut frontiers);
    let interval = params.interval.as_secs_f64();
    let horizon = Predictive::new(tuning, params.interval).horizon();
    let series = observed_rates(workload, interval, params.seed);
    let accuracy = mase(&series, tuning.forecast, horizon);
    SweepReport::new(path, workload, params, accuracy, frontiers)
}

/// Adds to predictive's frontier the margins [`refine::refine`] finds against the HPA's points
/// (nothing unless both are swept); predictive's frontier stays in knob order.
fn refine_predictive(
    workload: &Workload,
    policies: &[PolicySpec],
    tuning: &Tuning,
    params: &SimParams,
    frontiers: &mut [PolicyFrontier],
) {
    let find = |spec: PolicySpec| policies.iter().position(|&p| p == spec);
    let (Some(ours), Some(theirs)) = (find(PolicySpec::Predictive), find(PolicySpec::Hpa)) else {
        return;
    };
    let range = (LOWEST_MARGIN / 2.0, HIGHEST_MARGIN * 2.0);
    let found = refine::refine(
        &frontiers[ours].frontier,
        &frontiers[theirs].frontier,
        range,
        |knobs| {
            let jobs: Vec<Job> = knobs
                .iter()
                .map(|&value| {
                    let (spec, tuning) =
                        Knob::SafetyMargin.apply(PolicySpec::Predictive, value, tuning);
                    Job {
                        policy: ours,
                        knob: Some(value),
                        spec,
                        tuning,
                    }
                })
                .collect();
            run_all(workload, &jobs, params)
        },
    );
    let frontier = &mut frontiers[ours].frontier;
    frontier.extend(found);
    frontier.sort_by(|a, b| a.knob.total_cmp(&b.knob));
}

/// Runs the jobs on every CPU the process may use, results in the order given.
fn run_all(workload: &Workload, jobs: &[Job], params: &SimParams) -> Vec<Point> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()) {
            scope.spawn(|| {
                // The policies log as they would in production; keep the table readable.
                let quiet = tracing::subscriber::NoSubscriber::default();
                tracing::subscriber::with_default(quiet, || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        let r = engine::run(workload, job.spec, &job.tuning, params);
                        let point = Point {
                            knob: 0.0,
                            pod_seconds: r.pod_seconds,
                            sla_violations: r.sla_violations + r.rejected,
                            scale_events: r.scale_events,
                            refined: false,
                        };
                        if let Ok(mut slots) = results.lock() {
                            slots[i] = Some(point);
                        }
                    }
                });
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .map(|p| p.expect("every job ran"))
        .collect()
}

impl SweepReport {
    /// Writes the report as JSON (`--json`).
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Draws every policy's frontier, pod-hours against requests over the SLA (`--plot`).
    pub fn draw(&self, path: &Path) -> anyhow::Result<()> {
        plot::draw(path, self).with_context(|| format!("drawing {}", path.display()))
    }
}
