//! The run journal: `journal.jsonl` in the run's report folder, an append-only record of
//! everything the ledger was told, written as the run goes, so that a load tester killed
//! mid-run (`kill -9`, an OOM kill, a lost node) leaves enough on disk for
//! `load-tester report --run-dir DIR` to rebuild the report.
//!
//! The format is JSON lines, one object per line with a short type tag `t`:
//! - line 1, `run`: the [`Header`] (format version, run id, start time, the workload's rates and
//!   arrivals from which the plan is rebuilt, the target and delivery settings);
//! - `sent`, `cap`, `enq`, `direct`, `rec`: the ledger's events with their arguments (times in
//!   microseconds since the run's start), so a replay feeds the same ledger code as the run;
//! - `inst`: a dispatcher instance id seen for the first time, numbered from 1 in order of
//!   appearance; an accepted `enq` names its instance by that number (`i`), and an `inst` line
//!   seen in a `/stats` answer or a records page (`obs`) is itself a ledger event (a restart);
//! - `pull`, `dropped`, `sample`: the pull path's status, the dispatcher's drop counts and the
//!   sampled queue/replica series;
//! - `lost`: lines the writer could not take (its queue was full), cumulative;
//! - `end`: the run ended (`interrupted` or not). A journal without it was cut short.
//!
//! [`writer`] holds the writer thread, [`read`] the one parser.

pub mod read;
pub mod writer;

use std::path::PathBuf;
use std::time::Duration;

use harness_core::wire::{DroppedRecords, LatencyRecord, Outcome};
use serde::{Deserialize, Serialize};

use crate::delivery::{Delivery, PullStatus, RecordDelivery};
use crate::ledger::EnqueueOutcome;
use crate::sampler::SeriesKind;
use crate::schedule::ArrivalProcess;
use crate::target::{DirectAnswer, TargetInfo};

pub use read::{JournalReader, ReadSummary};
pub use writer::Journal;

/// The journal's file name inside a run's report folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Bumped on any incompatible change to the lines. Version 2 added `inst` lines and the `i` of
/// `enq` lines; a version 1 journal (no instance ids) still reads.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this load tester reads.
pub const OLDEST_VERSION: u32 = 1;
/// Instance ids a journal numbers at most; an accepting instance past them is `i: 0`, which
/// the ledger (that tracks fewer) treats as an unknown instance, as it did in the run.
pub const MAX_INSTANCES: usize = 1024;

/// The first line: what the run was asked to do, enough to rebuild its plan and report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub version: u32,
    pub run_id: String,
    /// Wall-clock time of the schedule's offset zero, Unix epoch ms.
    pub started_at_ms: f64,
    pub dispatcher_url: String,
    pub target: TargetInfo,
    pub arrivals: ArrivalProcess,
    /// The Poisson seed (`None` for uniform arrivals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u64>,
    /// The workload, one rate per second.
    pub rates: Vec<u32>,
    /// Requests the plan holds (a check on the rebuilt plan).
    pub planned: u64,
    pub concurrency: usize,
    pub images: usize,
    pub record_delivery: RecordDelivery,
}

/// What the journal wrote: the `journal` object of `stats.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalStats {
    /// The file, relative to the report folder.
    pub file: String,
    pub lines: u64,
    pub bytes: u64,
    /// `bytes / sent`, what one request costs in the journal.
    pub bytes_per_request: f64,
    /// Lines lost because the writer fell behind: a rebuild from this journal would miss them.
    pub dropped_lines: u64,
    /// The journal holds the run's end; false while the run goes on, or when it was cut short.
    pub ended: bool,
    /// This report was rebuilt from the journal (`load-tester report --run-dir`).
    pub rebuilt: bool,
    /// The rebuild found a last line without its newline (cut by the crash) and ignored it.
    pub torn_line_ignored: bool,
}

/// How `/enqueue` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnqueueAnswer {
    Accepted,
    Rejected,
    Error,
}

/// How a model server answered a direct request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectKind {
    Ok,
    Rejected,
    Failed,
    Error,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
pub enum Line {
    Run(Box<Header>),
    /// A send started: `lag` µs after its intended time, `at` µs into the run.
    Sent {
        seq: u64,
        lag: u64,
        at: u64,
    },
    /// A send waited for the concurrency cap.
    Cap,
    /// `/enqueue` answered `since` µs after the intended send time, `at` µs into the run;
    /// `code` is the rejection's code or the send error's kind.
    #[serde(rename = "enq")]
    Enqueue {
        seq: u64,
        since: u64,
        at: u64,
        answer: EnqueueAnswer,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// The accepting dispatcher instance (its `inst` number; 0: one past the table),
        /// absent when the answer named none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        i: Option<u32>,
    },
    /// Dispatcher instance `n` (from 1, in order of appearance) is `id`. `obs`: first seen in
    /// a `/stats` answer or a records page, which the ledger was told (a new id after another
    /// is a restart); otherwise first seen in the `/enqueue` answer of the next `enq` line.
    #[serde(rename = "inst")]
    Instance {
        n: u32,
        id: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        obs: bool,
    },
    /// A model server's answer to a direct request (`code` of a refusal, failure or error).
    Direct {
        seq: u64,
        since: u64,
        at: u64,
        answer: DirectKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// A latency record, with the fields the ledger reads.
    #[serde(rename = "rec")]
    Record(RecordLine),
    Pull {
        status: PullStatus,
    },
    Dropped(DroppedRecords),
    /// A sampled point, `at` seconds into the run.
    Sample {
        at: f64,
        series: String,
        kind: SeriesKind,
        value: f64,
    },
    /// Lines the writer could not take so far (its queue was full).
    Lost {
        lines: u64,
    },
    /// The run ended; a journal without this line was cut short.
    End {
        interrupted: bool,
    },
}

/// A latency record in the journal: its request's seq, the path it came by and what the
/// ledger reads of it (the record's other fields do not enter the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordLine {
    pub seq: u64,
    pub via: Delivery,
    /// `latencyMs`, `queueWaitMs`, `inferenceMs`, `completedAtMs`.
    pub lat: f64,
    pub qw: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inf: Option<f64>,
    pub done: f64,
    pub out: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl RecordLine {
    pub fn new(seq: u64, record: &LatencyRecord, via: Delivery) -> Self {
        Self {
            seq,
            via,
            lat: record.latency_ms,
            qw: record.queue_wait_ms,
            inf: record.inference_ms,
            done: record.completed_at_ms,
            out: record.outcome.as_str().to_owned(),
            label: record.label.clone(),
        }
    }

    /// The record again, with `id` and the fields the journal leaves out at their defaults.
    pub fn record(&self, id: String) -> LatencyRecord {
        LatencyRecord {
            id,
            enqueued_at_ms: self.done - self.lat,
            dispatched_at_ms: None,
            completed_at_ms: self.done,
            queue_wait_ms: self.qw,
            inference_ms: self.inf,
            latency_ms: self.lat,
            attempts: 0,
            outcome: Outcome::from_code(&self.out),
            http_status: None,
            label: self.label.clone(),
            endpoint: None,
        }
    }
}

/// Microseconds of a duration, as the journal stores them.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Line {
    /// An `enq` line; `instance`: the accepting instance's number in the journal.
    pub fn enqueue(
        seq: u64,
        outcome: &EnqueueOutcome,
        instance: Option<u32>,
        since: Duration,
        at: Duration,
    ) -> Self {
        let (answer, code) = match outcome {
            EnqueueOutcome::Accepted => (EnqueueAnswer::Accepted, None),
            EnqueueOutcome::Rejected { code } => (EnqueueAnswer::Rejected, Some(code.clone())),
            EnqueueOutcome::Error { kind } => (EnqueueAnswer::Error, Some((*kind).to_owned())),
        };
        Line::Enqueue {
            seq,
            since: micros(since),
            at: micros(at),
            answer,
            code,
            i: instance,
        }
    }

    pub fn direct(
        seq: u64,
        answer: &Result<DirectAnswer, &'static str>,
        since: Duration,
        at: Duration,
    ) -> Self {
        let (kind, code, label) = match answer {
            Ok(DirectAnswer::Ok { label }) => (DirectKind::Ok, None, label.clone()),
            Ok(DirectAnswer::Rejected { code }) => (DirectKind::Rejected, Some(code.clone()), None),
            Ok(DirectAnswer::Failed { code }) => (DirectKind::Failed, Some(code.clone()), None),
            Err(kind) => (DirectKind::Error, Some((*kind).to_owned()), None),
        };
        Line::Direct {
            seq,
            since: micros(since),
            at: micros(at),
            answer: kind,
            code,
            label,
        }
    }
}

/// The kinds of send error (no answer at all), as the ledger names them.
const SEND_ERROR_KINDS: [&str; 3] = ["connect_error", "timeout", "request_error"];

/// A send error's kind as the ledger's `'static` name; `None` for a kind it never writes.
pub fn send_error_kind(kind: &str) -> Option<&'static str> {
    SEND_ERROR_KINDS.into_iter().find(|k| *k == kind)
}

/// Why a journal cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line that is not a journal line (a torn last line is not an error).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Malformed {
        path: PathBuf,
        line: u64,
        column: usize,
        message: String,
    },
    #[error("cannot start the journal writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

#[cfg(test)]
mod tests;
