//! The `pipeline` binary: `pipeline demo` runs the whole pipeline in this process.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use pipeline::{Cli, Command};
use tokio::sync::oneshot;

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

#[tokio::main]
async fn main() -> ExitCode {
    let Cli {
        command: Command::Demo(args),
    } = Cli::parse_from(arguments());
    harness_core::telemetry::init();
    let settings = match args.validate() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    match pipeline::run(settings, interrupt()).await {
        Ok(outcome) => {
            print!("{}", pipeline::summary::render(&outcome));
            if outcome.interrupted() {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, minus one `--` right after `demo`: the `cargo demo` alias already ends
/// in `--`, so `cargo demo -- --scaler predictive` (the habit from `cargo run`) arrives as
/// `demo -- --scaler predictive`. Both spellings then work.
fn arguments() -> Vec<OsString> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "demo") && args.get(2).is_some_and(|a| a == "--") {
        args.remove(2);
    }
    args
}

/// Completes on the first Ctrl-C or SIGTERM (stop cleanly and write the report); a second one
/// exits at once.
fn interrupt() -> impl Future<Output = ()> + Send + 'static {
    let (first_tx, first_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        harness_core::shutdown_signal().await;
        eprintln!(
            "stopping: finishing in-flight work and writing the report (Ctrl-C again to quit now)"
        );
        let _ = first_tx.send(());
        harness_core::shutdown_signal().await;
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    async move {
        let _ = first_rx.await;
    }
}
