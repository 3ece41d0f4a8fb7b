//! The scaling-policy simulator: replay a per-second workload through a model of the pipeline
//! under several policies and compare what each costs (replica-seconds) against what it
//! delivers (requests over the SLA, latency percentiles).
//!
//! The policies are the runtime controller's own ([`crate::policy`]), decision for decision;
//! only the world around them is modelled ([`engine`]). Deterministic for a seed.
//!
//! The library runs and returns: [`run`] takes [`SimulateOptions`] and gives back a
//! [`Simulation`]; the binary prints its table and asks for the JSON and the plot.
//!
//! Layout: `arrivals` (request and service-time streams), [`engine`] (the model),
//! `histogram` (latency bins), [`comparison`] (the per-policy table and JSON), `plot` (the
//! PNG), [`sweep`] (each policy over its main knob: frontiers, dominance, forecast accuracy),
//! [`workload`] (traces).

mod arrivals;
pub mod comparison;
pub mod engine;
mod histogram;
mod plot;
pub mod sweep;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use arrivals::ServiceTime;
pub use comparison::{Report, Summary, span};
pub use engine::{Bucket, RunResult, SimParams};
pub use workload::{Shape, Workload, WorkloadError};

use crate::policy::PolicySpec;
use crate::tuning::Tuning;

/// What `autoscaler simulate` runs, validated (`SimulateArgs::validate` builds it from the
/// flags).
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Per-second arrival rates (the workload file format).
    pub workload: PathBuf,
    /// Policies to compare, in the order to report them.
    pub policies: Vec<PolicySpec>,
    pub tuning: Tuning,
    /// Time between decisions (> 0).
    pub interval: Duration,
    /// Seed of the arrival and service-time streams.
    pub seed: u64,
    /// Replicas at the start; `None`: [`warm_start`].
    pub initial_replicas: Option<u32>,
    /// Requests the dispatcher queue holds before refusing.
    pub queue_capacity: usize,
    /// Measured service times in seconds; `None`: exponential with mean 1/serviceRatePerPod.
    pub service_times: Option<PathBuf>,
    /// `Some(points)`: sweep each policy's main knob over this many values ([`run_sweep`]).
    pub sweep: Option<usize>,
}

/// A finished simulation: what the binary prints, writes as JSON and draws.
#[derive(Debug)]
pub struct Simulation {
    pub workload: Workload,
    pub params: SimParams,
    /// One per policy, in the order given.
    pub results: Vec<RunResult>,
    pub report: Report,
    /// Wall-clock time the runs took.
    pub elapsed: Duration,
}

/// Runs every policy over the workload, in parallel (each run is independent and
/// single-threaded), results in the order given.
pub fn simulate(
    workload: &Workload,
    policies: &[PolicySpec],
    tuning: &Tuning,
    params: &SimParams,
) -> Vec<RunResult> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results = Vec::with_capacity(policies.len());
    for chunk in policies.chunks(threads.max(1)) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&spec| {
                    scope.spawn(move || {
                        // The policies log as they would in production; thousands of
                        // simulated decisions would drown the table.
                        let quiet = tracing::subscriber::NoSubscriber::default();
                        tracing::subscriber::with_default(quiet, || {
                            engine::run(workload, spec, tuning, params)
                        })
                    })
                })
                .collect();
            for handle in handles {
                match handle.join() {
                    Ok(result) => results.push(result),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
    }
    results
}

/// Simulation parameters from the options.
pub fn params(options: &SimulateOptions, workload: &Workload, service: ServiceTime) -> SimParams {
    let tuning = &options.tuning;
    SimParams {
        interval: options.interval,
        cold_start: tuning.decision.cold_start,
        sla_latency: tuning.decision.sla_latency,
        service,
        seed: options.seed,
        queue_capacity: options.queue_capacity,
        initial_replicas: options
            .initial_replicas
            .unwrap_or_else(|| warm_start(workload, tuning)),
    }
}

/// Replicas for the first minute's mean rate at `targetUtilization`: every dynamic policy
/// starts from the same warm system rather than from a cold start the trace does not show.
pub fn warm_start(workload: &Workload, tuning: &Tuning) -> u32 {
    let first = &workload.rates()[..workload.seconds().min(60)];
    let rate = first.iter().sum::<f64>() / first.len().max(1) as f64;
    let d = &tuning.decision;
    let replicas = (rate / (d.service_rate_per_pod * d.target_utilization)).ceil();
    (replicas.min(f64::from(d.max_replicas)) as u32).clamp(d.min_replicas, d.max_replicas)
}

/// Reads the workload and the service-time model the options name.
fn load(options: &SimulateOptions) -> anyhow::Result<(Workload, SimParams)> {
    let workload = Workload::load(&options.workload)?;
    let service = match &options.service_times {
        Some(path) => {
            let samples = Workload::load(path)?;
            ServiceTime::Empirical(Arc::from(samples.rates()))
        }
        None => ServiceTime::Exponential {
            rate: options.tuning.decision.service_rate_per_pod,
        },
    };
    let params = params(options, &workload, service);
    Ok((workload, params))
}

/// `autoscaler simulate --sweep`: every policy at `options.sweep` values of its main knob
/// (9 when unset), and at the tuning as given. Returns the report and the wall-clock time.
pub fn run_sweep(options: &SimulateOptions) -> anyhow::Result<(sweep::SweepReport, Duration)> {
    let (workload, params) = load(options)?;
    let started = std::time::Instant::now();
    let report = sweep::sweep(
        &options.workload,
        &workload,
        &options.policies,
        &options.tuning,
        &params,
        options.sweep.unwrap_or(9),
    );
    Ok((report, started.elapsed()))
}

/// `autoscaler simulate`: reads the workload (and measured service times), runs every policy
/// over it and summarises the runs.
pub fn run(options: &SimulateOptions) -> anyhow::Result<Simulation> {
    let tuning = &options.tuning;
    let (workload, params) = load(options)?;
    let started = std::time::Instant::now();
    let results = simulate(&workload, &options.policies, tuning, &params);
    let elapsed = started.elapsed();
    let report = Report::new(&options.workload, &workload, tuning, &params, &results);
    Ok(Simulation {
        workload,
        params,
        results,
        report,
        elapsed,
    })
}

impl Simulation {
    /// Writes the report as JSON (`--json`).
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(&self.report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Draws load, replicas and latency over time to a PNG (`--plot`).
    pub fn draw(&self, path: &Path) -> anyhow::Result<()> {
        plot::draw(path, &self.workload, &self.results, self.params.sla_latency)
            .with_context(|| format!("drawing {}", path.display()))
    }
}

/// `autoscaler workload`: writes the synthetic trace `shape` (noise from `seed`) to `out`.
pub fn write_workload(shape: Shape, seed: u64, out: &Path) -> anyhow::Result<()> {
    let workload = shape.generate(seed);
    let name = clap::ValueEnum::to_possible_value(&shape)
        .map_or_else(|| format!("{shape:?}"), |v| v.get_name().to_owned());
    let header = format!(
        "Synthetic {name} workload: arrival rate (requests/s) for each of {} seconds.\n\
         Generated by `autoscaler workload --shape {name} --seed {}`.",
        workload.seconds(),
        seed
    );
    std::fs::write(out, workload.to_text(&header))
        .with_context(|| format!("writing {}", out.display()))
}
