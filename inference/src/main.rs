//! The inference service binary: parse the configuration, start logging, bind, serve.

use clap::Parser;
use inference::Config;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    harness_core::telemetry::init();
    let listener = TcpListener::bind(config.listen).await?;
    inference::run(listener, config, harness_core::shutdown_signal()).await
}
