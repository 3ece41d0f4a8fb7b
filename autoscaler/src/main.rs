//! `autoscaler serve | simulate | workload`.

use autoscaler::{Cli, Command};
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
            tokio::task::spawn_blocking(move || autoscaler::simulate::run(&args).map(drop)).await?
        }
        Command::Workload(args) => autoscaler::simulate::write_workload(&args),
    }
}
