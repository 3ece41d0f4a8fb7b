//! The scaling-policy simulator: replay a per-second workload through a model of the pipeline
//! under several policies and compare what each costs (replica-seconds) against what it
//! delivers (requests over the SLA, latency percentiles).
//!
//! The policies are the runtime controller's own ([`crate::policy`]), decision for decision;
//! only the world around them is modelled ([`engine`]). Deterministic for a seed.

mod arrivals;
pub mod engine;
mod histogram;
mod plot;
pub mod report;
pub mod workload;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

pub use arrivals::ServiceTime;
pub use engine::{Bucket, RunResult, SimParams};
pub use report::{Report, Summary};
pub use workload::{Shape, Workload, WorkloadError};

use crate::cli::{SimulateArgs, WorkloadArgs};
use crate::config::Tuning;
use crate::policy::PolicySpec;

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

/// Simulation parameters from the tuning and the command line.
pub fn params(
    tuning: &Tuning,
    args: &SimulateArgs,
    workload: &Workload,
    service: ServiceTime,
) -> SimParams {
    SimParams {
        interval: args.interval,
        cold_start: tuning.decision.cold_start,
        sla_latency: tuning.decision.sla_latency,
        service,
        seed: args.seed,
        queue_capacity: args.queue_capacity,
        initial_replicas: args
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

/// `autoscaler simulate`: runs, prints the comparison table, writes JSON and PNG if asked.
pub fn run(args: &SimulateArgs) -> anyhow::Result<Report> {
    let tuning = Tuning::load(args.config.as_deref(), &args.tuning)?;
    if args.interval.is_zero() {
        anyhow::bail!("--interval must be > 0");
    }
    let workload = read_workload(&args.workload)?;
    let service = match &args.service_times {
        Some(path) => {
            let samples = read_workload(path)?;
            ServiceTime::Empirical(Arc::from(samples.rates()))
        }
        None => ServiceTime::Exponential {
            rate: tuning.decision.service_rate_per_pod,
        },
    };
    let params = params(&tuning, args, &workload, service);
    let started = std::time::Instant::now();
    let results = simulate(&workload, &args.policies, &tuning, &params);
    let elapsed = started.elapsed();
    let report = Report::new(&args.workload, &workload, &tuning, &params, &results);
    println!("{}", report.table());
    println!(
        "{} policies × {} of workload simulated in {:.2} s (seed {})",
        results.len(),
        report::span(workload.seconds() as f64),
        elapsed.as_secs_f64(),
        params.seed
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot::draw(path, &workload, &results, &tuning)
            .with_context(|| format!("drawing {}", path.display()))?;
    }
    Ok(report)
}

/// `autoscaler workload`: writes a synthetic trace.
pub fn write_workload(args: &WorkloadArgs) -> anyhow::Result<()> {
    let workload = args.shape.generate(args.seed);
    let name = format!("{:?}", args.shape).to_lowercase();
    let header = format!(
        "Synthetic {name} workload: arrival rate (requests/s) for each of {} seconds.\n\
         Generated by `autoscaler workload --shape {name} --seed {}`.",
        workload.seconds(),
        args.seed
    );
    std::fs::write(&args.out, workload.to_text(&header))
        .with_context(|| format!("writing {}", args.out.display()))
}

fn read_workload(path: &Path) -> anyhow::Result<Workload> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Workload::parse(&text).with_context(|| format!("{}", path.display()))
}
