//! `load-tester serve` (HTTP API), `load-tester run` (one test from the terminal) and
//! `load-tester report` (a report rebuilt from a run's journal).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use load_tester::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    harness_core::telemetry::init();
    match cli.command {
        Command::Serve(config) => {
            let addr = config.listen_addr();
            if config.listen.is_none() && addr.ip().is_loopback() {
                tracing::info!(
                    %addr,
                    "no AUTH_TOKEN: listening on loopback only; set AUTH_TOKEN (or LISTEN_ADDR) \
                     to serve other hosts"
                );
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            load_tester::run(listener, config, harness_core::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            Ok(load_tester::run_command::run(args, harness_core::shutdown_signal()).await)
        }
        Command::Report(args) => Ok(load_tester::report_command::run(args).await),
    }
}
