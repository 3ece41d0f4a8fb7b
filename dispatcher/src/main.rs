//! `dispatcher`: parse the configuration, start logging, bind, run until SIGTERM.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = dispatcher::Config::parse();
    harness_core::telemetry::init();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    dispatcher::run(listener, config, harness_core::shutdown_signal()).await
}
