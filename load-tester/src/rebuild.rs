//! A run rebuilt from its journal: what `load-tester report --run-dir DIR` does after the load
//! tester that ran it stopped (`kill -9`, an OOM kill, a lost node) or to redo a report.
//!
//! [`replay`] feeds every journal line to a fresh ledger through the same methods the run
//! called, so the statistics have one implementation. [`collect`] then asks the dispatcher
//! for the records that arrived after the crash (its `GET /records` keeps them until someone
//! collects them), journaling each page before acknowledging it. [`write`] writes the report
//! folder with the same code as a live run. Requests whose fate is still unknown are `missing`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness_core::sync::lock;
use reqwest::Url;

use crate::error::Error;
use crate::journal::{
    DirectKind, EnqueueAnswer, JOURNAL_FILE, Journal, JournalError, JournalReader, Line,
    ReadSummary, send_error_kind,
};
use crate::ledger::{EnqueueOutcome, Ledger, request_id};
use crate::metrics::Metrics;
use crate::pull::Puller;
use crate::report::{ReportData, ReportError, ReportFiles, write_blocking};
use crate::sampler::Sample;
use crate::schedule::Plan;
use crate::stats::Stats;
use crate::store::{Phase, RunInfo, RunState};
use crate::target::{DirectAnswer, TargetKind};
use crate::workload::Workload;

/// A run read back from its journal.
#[derive(Debug)]
pub struct Replayed {
    /// Without a journal yet: see [`Replayed::into_run`].
    pub state: RunState,
    /// The journal file.
    pub path: PathBuf,
    pub read: ReadSummary,
}

impl Replayed {
    /// True when the journal holds the run's end (it was not cut short).
    pub fn ended(&self) -> bool {
        self.read.ended.is_some()
    }
}

/// Reads `<dir>/journal.jsonl` into a run state with its ledger, pull state and timeline as
/// the run left them. Blocking (file reads).
pub fn replay(dir: &Path) -> Result<Replayed, JournalError> {
    let path = dir.join(JOURNAL_FILE);
    let reader = JournalReader::open(&path)?;
    let header = reader.header().clone();
    let at_header = |message: String| JournalError::Malformed {
        path: path.clone(),
        line: 1,
        column: 1,
        message,
    };
    let rates: Vec<f64> = header.rates.iter().map(|&r| f64::from(r)).collect();
    let workload = Workload::from_numbers(&rates, path.display().to_string())
        .map_err(|e| at_header(format!("the header's workload: {e}")))?;
    let arrivals = header.arrivals.with_seed(header.seed.unwrap_or(0));
    let plan = Arc::new(Plan::new(&workload, arrivals, header.max_requests));
    if plan.total() != header.planned {
        return Err(at_header(format!(
            "the header plans {} requests but its workload gives {}",
            header.planned,
            plan.total()
        )));
    }
    let info = RunInfo {
        run_id: header.run_id.clone(),
        dispatcher_url: header.dispatcher_url.clone(),
        arrivals: header.arrivals,
        max_requests: header.max_requests,
        concurrency: header.concurrency,
        images: header.images,
        record_delivery: header.record_delivery,
        target: header.target.clone(),
    };
    let ledger = Ledger::new(header.run_id.clone(), plan, header.started_at_ms);
    let state = RunState::new(info, Instant::now(), ledger);
    let read = reader.for_each(|line, instances| apply(&state, instances, line))?;
    state.set_phase(match read.ended {
        Some(false) => Phase::Done,
        // Interrupted, or cut short: the load tester stopped before the run's end.
        Some(true) | None => Phase::Interrupted,
    });
    Ok(Replayed { state, path, read })
}

fn us(micros: u64) -> Duration {
    Duration::from_micros(micros)
}

/// One journal line, applied as the run applied the event; `instances`: the dispatcher
/// instance ids numbered so far.
fn apply(state: &RunState, instances: &[String], line: Line) -> Result<(), String> {
    match line {
        Line::Sent { seq, lag, at } => lock(&state.ledger).on_sent(seq, us(lag), us(at)),
        Line::Cap => lock(&state.ledger).on_cap_hit(),
        Line::Enqueue {
            seq,
            since,
            at,
            answer,
            code,
            i,
        } => {
            let accepted = answer == EnqueueAnswer::Accepted;
            let outcome = match answer {
                EnqueueAnswer::Accepted => EnqueueOutcome::Accepted,
                EnqueueAnswer::Rejected => EnqueueOutcome::Rejected {
                    code: code.unwrap_or_default(),
                },
                EnqueueAnswer::Error => EnqueueOutcome::Error {
                    kind: error_kind(code.as_deref())?,
                },
            };
            // Number 0: an id past the journal's table, unknown to the ledger as in the run.
            let instance = i.map(|i| {
                i.checked_sub(1)
                    .and_then(|p| instances.get(p as usize))
                    .map_or("", String::as_str)
            });
            let mut ledger = lock(&state.ledger);
            ledger.on_enqueue(seq, outcome, us(since), us(at));
            if accepted {
                ledger.accepted_by(seq, instance);
            }
        }
        Line::Instance { id, obs: true, .. } => {
            lock(&state.ledger).observe_instance(&id);
        }
        // Named by the `enq` lines that follow, which tell the ledger.
        Line::Instance { obs: false, .. } => {}
        Line::Direct {
            seq,
            since,
            at,
            answer,
            code,
            label,
        } => {
            let code_or_empty = || code.clone().unwrap_or_default();
            let answer = match answer {
                DirectKind::Ok => Ok(DirectAnswer::Ok { label }),
                DirectKind::Rejected => Ok(DirectAnswer::Rejected {
                    code: code_or_empty(),
                }),
                DirectKind::Failed => Ok(DirectAnswer::Failed {
                    code: code_or_empty(),
                }),
                DirectKind::Error => Err(error_kind(code.as_deref())?),
            };
            lock(&state.ledger).on_direct(seq, answer, us(since), us(at));
        }
        Line::Record(record) => {
            let full = record.record(request_id(state.id(), record.seq));
            lock(&state.ledger).on_record(record.seq, &full, record.via);
        }
        Line::Pull { status } => lock(&state.pull).status = status,
        Line::Dropped(dropped) => lock(&state.pull).dispatcher_dropped = dropped,
        Line::Sample {
            at,
            series,
            kind,
            value,
        } => {
            let at = Duration::try_from_secs_f64(at).map_err(|e| format!("sample time: {e}"))?;
            lock(&state.timeline).push(at, Sample::new(series, kind, value));
        }
        // Read by the reader itself.
        Line::Run(_) | Line::Lost { .. } | Line::End { .. } => {}
    }
    Ok(())
}

fn error_kind(code: Option<&str>) -> Result<&'static str, String> {
    let code = code.unwrap_or("");
    send_error_kind(code).ok_or_else(|| format!("unknown send error kind {code:?}"))
}

impl Replayed {
    /// Requests sent whose fate the journal does not know: no record, no rejection, no send
    /// error. What [`collect`] asks the dispatcher about.
    pub fn unknown(&self) -> u64 {
        let c = lock(&self.state.ledger).counts();
        c.sent
            .saturating_sub(c.completed + c.rejected + c.send_errors)
    }

    /// True when the dispatcher may hold records of this run.
    pub fn can_collect(&self) -> bool {
        self.state.info.target.kind == TargetKind::Dispatcher && self.unknown() > 0
    }

    /// The run, ready for [`collect`] and [`write`]: with a journal that appends what is
    /// collected (`append`), or one that only reports what was read.
    pub fn into_run(self, append: bool, metrics: &Metrics) -> Result<Arc<RunState>, JournalError> {
        let journal = if append {
            Journal::append(&self.path, &self.read, metrics)?
        } else {
            Journal::read_only(&self.path, &self.read, metrics)
        };
        Ok(Arc::new(self.state.with_journal(journal)))
    }
}

/// Asks the dispatcher at `dispatcher` for the run's records that arrived after the journal
/// stopped, for at most `timeout`; each page is in the journal before it is acknowledged.
/// Returns how many requests gained a record.
pub async fn collect(
    run: &Arc<RunState>,
    dispatcher: &Url,
    timeout: Duration,
    metrics: &Metrics,
) -> Result<u64, Error> {
    let before = lock(&run.ledger).counts().completed;
    let client = reqwest::Client::builder()
        .build()
        .map_err(Error::HttpClient)?;
    let puller = Puller::new(client, dispatcher, run.clone(), metrics.clone());
    let collected = puller.collect(timeout).await;
    run.journal.close().await;
    collected.map_err(|source| Error::RecordsUnavailable {
        url: dispatcher.to_string(),
        source,
    })?;
    Ok(lock(&run.ledger).counts().completed - before)
}

/// Writes the report folder into `dir` (next to the journal) with the code a live run uses.
pub async fn write(run: &RunState, dir: &Path) -> Result<(Stats, ReportFiles), Error> {
    let data = ReportData::snapshot(run, None);
    let dir = dir.to_owned();
    let written = tokio::task::spawn_blocking(move || {
        let files = write_blocking(&data, &dir)?;
        Ok::<_, ReportError>((data.stats, files))
    })
    .await
    .map_err(ReportError::Panicked)?;
    Ok(written?)
}
