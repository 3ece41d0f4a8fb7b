//! `load-tester report --run-dir DIR`: rebuilds a run's report from its journal, after the load
//! tester that ran it stopped, and prints the same summary as `load-tester run`. (The clap
//! types are in [`crate::config`]; [`crate::rebuild`] does the work.)
//!
//! Exit codes: 0 the report was written, 2 it could not be (no journal, a malformed line,
//! `--collect require` and the dispatcher did not answer, the folder is not writable).

use std::process::ExitCode;

use crate::base_url::parse_base_url;
use crate::config::{Collect, ReportArgs};
use harness_core::sync::lock;

use crate::error::Error;
use crate::ledger::MissingReason;
use crate::metrics::Metrics;
use crate::rebuild::{self, replay};
use crate::report::ReportError;
use crate::run::RunOutcome;
use crate::run_command::summary;
use crate::store::Phase;

pub const EXIT_FAILED: u8 = 2;

/// Runs the `report` subcommand and returns the process exit code.
pub async fn run(args: ReportArgs) -> ExitCode {
    match rebuild_report(&args).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: cannot rebuild the report: {err}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Replays the journal, collects what the dispatcher still holds, writes the report; returns
/// what to print: notes on the rebuild, then the run's summary.
pub async fn rebuild_report(args: &ReportArgs) -> Result<String, Error> {
    let metrics = Metrics::new();
    let dir = args.run_dir.clone();
    let replayed = tokio::task::spawn_blocking(move || replay(&dir))
        .await
        .map_err(ReportError::Panicked)??;
    let mut notes = Vec::new();
    let read = &replayed.read;
    if read.torn_bytes > 0 {
        notes.push(format!(
            "ignored the journal's last line: {} byte(s) without a newline, cut when the load \
             tester stopped",
            read.torn_bytes
        ));
    }
    if !replayed.ended() {
        notes.push(
            "the journal has no end: the load tester stopped during the run; requests whose \
             fate is still unknown count as missing (load tester stopped)"
                .to_owned(),
        );
    }
    if read.lost > 0 {
        notes.push(format!(
            "the journal lost {} line(s) during the run (its writer fell behind): this report \
             may miss their events",
            read.lost
        ));
    }
    let dispatcher = args
        .dispatcher_url
        .as_deref()
        .filter(|url| !url.trim().is_empty())
        .map(parse_base_url)
        .transpose()?;
    let collect = args.collect != Collect::Off && replayed.can_collect();
    let ended = replayed.ended();
    let unknown = replayed.unknown();
    let run = replayed.into_run(collect, &metrics)?;
    if collect {
        let url = match dispatcher {
            Some(url) => url,
            None => parse_base_url(&run.info.dispatcher_url)?,
        };
        match rebuild::collect(&run, &url, args.collect_timeout, &metrics).await {
            Ok(gained) => notes.push(format!(
                "collected the records of {gained} of {unknown} request(s) without a known \
                 fate from {url}"
            )),
            Err(err) if args.collect == Collect::Auto => {
                tracing::warn!(%err, "could not collect the run's records; reporting without");
                notes.push(format!("could not collect records: {err}"));
            }
            Err(err) => return Err(err),
        }
    }
    if !ended {
        // Whatever still has no fate was in the hands of the load tester that stopped.
        lock(&run.ledger).mark_unknown_missing(MissingReason::LoadTesterStopped);
    }
    let (stats, report) = rebuild::write(&run, &args.run_dir).await?;
    let outcome = RunOutcome {
        run_id: stats.run_id.clone(),
        interrupted: stats.phase == Phase::Interrupted,
        stats,
        report,
    };
    let mut text = String::new();
    for note in notes {
        text.push_str(&format!("note: {note}\n"));
    }
    text.push_str(&summary(&outcome));
    Ok(text)
}
