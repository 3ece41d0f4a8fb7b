//! `load-tester run`: one test from the terminal, with a progress bar, a summary table, the
//! report path and `--fail-on` thresholds deciding the exit code. (The clap types of the
//! command line live in [`crate::config`]; this module runs the command.)
//!
//! Exit codes: 0 success, 1 a `--fail-on` threshold was violated, 2 the run could not start
//! (bad workload, no images, dispatcher unreachable, port taken), 130 interrupted.

use std::fmt::Write as _;
use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::net::TcpListener;

use crate::config::RunArgs;
use crate::run::{RunOptions, RunOutcome};
use crate::server::run_load_test;
use crate::stats::LatencySummary;
use crate::store::{Phase, Progress};

pub const EXIT_THRESHOLD: u8 = 1;
pub const EXIT_NOT_STARTED: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs the `run` subcommand and returns the process exit code.
pub async fn run(args: RunArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> ExitCode {
    let options = match RunOptions::from_args(&args.generator).await {
        Ok(options) => options,
        Err(err) => return not_started(&err),
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            return not_started(&format!(
                "cannot listen on {} for /storeLatency: {err} (another load tester running? \
                 pick another --listen and point the dispatcher's --report-url at it)",
                args.listen
            ));
        }
    };
    let bar = progress_bar(options.workload.seconds() as u64);
    let outcome = {
        let bar = bar.clone();
        run_load_test(options, listener, move |p| update(&bar, p), shutdown).await
    };
    bar.finish_and_clear();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => return not_started(&err),
    };
    print!("{}", summary(&outcome));
    let violations: Vec<String> = args
        .fail_on
        .iter()
        .filter_map(|t| t.check(&outcome.stats))
        .map(|v| v.to_string())
        .collect();
    for violation in &violations {
        eprintln!("threshold violated: {violation}");
    }
    if outcome.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if !violations.is_empty() {
        ExitCode::from(EXIT_THRESHOLD)
    } else {
        ExitCode::SUCCESS
    }
}

fn not_started(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: the run could not start: {err}");
    ExitCode::from(EXIT_NOT_STARTED)
}

fn progress_bar(seconds: u64) -> ProgressBar {
    let bar = ProgressBar::new(seconds);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} second {pos}/{len} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn update(bar: &ProgressBar, p: &Progress) {
    bar.set_position(p.second);
    let p99 = p
        .latency_p99_ms
        .map_or("–".to_owned(), |v| format!("{v:.0} ms"));
    let phase = match p.phase {
        Phase::Draining => format!(" · waiting for {} record(s)", p.outstanding),
        _ => String::new(),
    };
    bar.set_message(format!(
        "· {:.1} req/s · sent {} · ok {} · failed {} · p99 {p99}{phase}",
        p.send_rate,
        p.sent,
        p.succeeded,
        p.failed + p.rejected + p.send_errors,
    ));
}

/// The table printed at the end of a run.
pub fn summary(outcome: &RunOutcome) -> String {
    let s = &outcome.stats;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nrun {}{}",
        s.run_id,
        if outcome.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    let rows = [
        ("expected", s.total_requests),
        ("sent", s.sent),
        ("accepted", s.accepted),
        ("rejected", s.rejected),
        ("send errors", s.send_errors),
        ("completed", s.completed),
        ("succeeded", s.succeeded),
        ("failed", s.failed),
        ("missing", s.missing),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "  {name:<14}{value:>10}");
    }
    for (reason, n) in s.missing_by_reason.iter().filter(|&(_, &n)| n > 0) {
        let _ = writeln!(out, "    missing: {reason:<22}{n:>6}");
    }
    let _ = writeln!(
        out,
        "  {:<14}{:>10.1} s   throughput {:.2}/s",
        "duration", s.duration_seconds, s.throughput_per_second
    );
    for (code, n) in &s.failures_by_code {
        let _ = writeln!(out, "  failure {code:<20}{n:>6}");
    }
    let d = &s.delivery;
    let _ = writeln!(
        out,
        "  {:<14}{:>10}   pushed {} · pulled {} · redelivered {}",
        "records by",
        d.paths(),
        d.pushed,
        d.pulled,
        d.redelivered
    );
    for (reason, n) in d.dispatcher_dropped.by_reason() {
        if n > 0 {
            let _ = writeln!(
                out,
                "  dropped by the dispatcher ({}){n:>8}",
                reason.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "\n  {:<14}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "ms", "min", "mean", "p50", "p90", "p99", "p99.9", "max"
    );
    latency_line(&mut out, "latency", s.latency_ms.as_ref());
    latency_line(&mut out, "queue wait", s.queue_wait_ms.as_ref());
    latency_line(&mut out, "inference", s.inference_ms.as_ref());
    latency_line(&mut out, "enqueue", s.enqueue_ms.as_ref());
    latency_line(&mut out, "schedule lag", s.schedule_lag_ms.as_ref());
    let _ = writeln!(out, "\nreport: {}", outcome.report.html.display());
    out
}

fn latency_line(out: &mut String, name: &str, l: Option<&LatencySummary>) {
    match l {
        Some(l) => {
            let _ = writeln!(
                out,
                "  {name:<14}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}",
                l.min, l.mean, l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
        None => {
            let _ = writeln!(out, "  {name:<14}{:>9}", "no samples");
        }
    }
}
