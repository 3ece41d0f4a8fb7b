//! `autoscaler serve | simulate | workload`: parse the flags, init telemetry, then run the
//! subcommand. The library returns results; this binary is what prints them.

use autoscaler::simulate::{self, span};
use autoscaler::{Cli, Command, SimulateArgs};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    harness_core::telemetry::init();
    match cli.command {
        Command::Serve(config) => {
            let listener = tokio::net::TcpListener::bind(&config.listen).await?;
            autoscaler::run(listener, config, harness_core::shutdown_signal()).await
        }
        // CPU-bound: off the async executor.
        Command::Simulate(args) => {
            tokio::task::spawn_blocking(move || run_simulation(&args)).await?
        }
        Command::Workload(args) => simulate::write_workload(args.shape, args.seed, &args.out),
    }
}

/// `autoscaler simulate`: runs, prints the comparison table, writes JSON and PNG if asked.
fn run_simulation(args: &SimulateArgs) -> anyhow::Result<()> {
    let options = args.validate()?;
    if options.sweep.is_some() {
        return run_sweep(args, &options);
    }
    let done = simulate::run(&options)?;
    println!("{}", done.report.table());
    println!(
        "{} policies × {} of workload simulated in {:.2} s (seed {})",
        done.results.len(),
        span(done.workload.seconds() as f64),
        done.elapsed.as_secs_f64(),
        done.params.seed
    );
    if let Some(path) = &args.json {
        done.write_json(path)?;
    }
    if let Some(path) = &args.plot {
        done.draw(path)?;
    }
    Ok(())
}

/// `autoscaler simulate --sweep`: prints the frontiers and comparisons, writes JSON and PNG.
fn run_sweep(args: &SimulateArgs, options: &simulate::SimulateOptions) -> anyhow::Result<()> {
    let (report, elapsed) = simulate::run_sweep(options)?;
    println!("{}", report.table());
    let runs: usize = report
        .policies
        .iter()
        .map(|p| p.frontier.len() + usize::from(p.at_defaults.is_some()))
        .sum();
    println!(
        "{runs} runs × {} of workload simulated in {:.2} s (seed {})",
        span(report.workload_seconds as f64),
        elapsed.as_secs_f64(),
        report.seed
    );
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    if let Some(path) = &args.plot {
        report.draw(path)?;
    }
    Ok(())
}
