//! The ledger of one run: what happened to every request, in memory that stays flat.
//!
//! Per request it keeps one byte of state flags, indexed by sequence number (1 MB per million
//! requests), which is what detecting duplicate and missing records needs. Everything else is
//! aggregated on arrival: HDR histograms (3 significant digits, microseconds) for the report's
//! percentiles, and per-second bins for the time plots, whose latencies are exact while a second
//! has few and a compact histogram beyond ([`SecondLatency`]): a bin is about 60 bytes, allocated
//! for the whole schedule when the run starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use harness_core::wire::LatencyRecord;

use crate::delivery::Delivery;
use crate::schedule::Plan;
use crate::target::DirectAnswer;

mod aggregates;
mod instances;
mod missing;
mod second_latency;

pub use aggregates::{Counts, Histograms, SecondBin};
pub use instances::Restart;
pub use missing::MissingReason;
pub use second_latency::SecondLatency;

/// Histogram range: 1 µs to 1 hour; larger values saturate at the top.
const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Completions this long after the schedule ends still get their own second in the plots.
const EXTRA_SECONDS: usize = 3_600;

const SENT: u8 = 1;
const ACCEPTED: u8 = 1 << 1;
const REJECTED: u8 = 1 << 2;
const SEND_ERROR: u8 = 1 << 3;
const RECORDED: u8 = 1 << 4;
/// The record that counted came through the pull path.
const PULLED: u8 = 1 << 5;
// Bits 6 and 7: the reason a request is marked missing (see `missing`).

/// What `/enqueue` answered for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A 2xx: the dispatcher queued the item and will report a record.
    Accepted,
    /// Any other HTTP response; `code` is the error body's code, or `http_<status>`.
    Rejected { code: String },
    /// No response at all: `connect_error`, `timeout` or `request_error`.
    Error { kind: &'static str },
}

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    Stored,
    Duplicate,
    /// Already stored, and one of the deliveries was a pull (see [`Counts::redelivered`]).
    Redelivered,
    Unmatched,
}

/// Everything known about the requests of one run.
#[derive(Debug)]
pub struct Ledger {
    run_id: String,
    plan: Arc<Plan>,
    start_unix_ms: f64,
    states: Vec<u8>,
    counts: Counts,
    failures: BTreeMap<String, u64>,
    /// Successful requests by top-1 label (a check that the model really ran).
    labels: BTreeMap<String, u64>,
    histograms: Histograms,
    seconds: Vec<SecondBin>,
    /// Latest event (answer or completion) since the start: the run's duration.
    last_event: Duration,
    /// Requests both accepted and recorded. A record can arrive before its `/enqueue` answer
    /// is processed, so both events check for the other.
    accepted_recorded: u64,
    /// Requests marked missing with a reason.
    marked: missing::Marked,
    /// The dispatcher instances seen, and which one accepted each request.
    instances: instances::Instances,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn ms_to_micros(ms: f64) -> u64 {
    (ms.max(0.0) * 1000.0).round() as u64
}

impl Ledger {
    /// A ledger for `plan`; `start_unix_ms` is the wall-clock time of offset zero, used to
    /// place the dispatcher's completion timestamps on the run's time axis.
    pub fn new(run_id: impl Into<String>, plan: Arc<Plan>, start_unix_ms: f64) -> Self {
        let total = usize::try_from(plan.total()).unwrap_or(usize::MAX);
        Self {
            run_id: run_id.into(),
            states: vec![0; total],
            seconds: vec![SecondBin::default(); plan.seconds()],
            plan,
            start_unix_ms,
            counts: Counts::default(),
            failures: BTreeMap::new(),
            labels: BTreeMap::new(),
            histograms: Histograms::new(),
            last_event: Duration::ZERO,
            accepted_recorded: 0,
            marked: missing::Marked::default(),
            instances: instances::Instances::default(),
        }
    }

    fn bin(&mut self, second: usize) -> &mut SecondBin {
        let index = second.min(self.plan.seconds() + EXTRA_SECONDS - 1);
        if index >= self.seconds.len() {
            self.seconds.resize_with(index + 1, SecondBin::default);
        }
        &mut self.seconds[index]
    }

    /// Index of `seq` in the state array, if it belongs to the plan.
    fn index(&self, seq: u64) -> Option<usize> {
        usize::try_from(seq).ok().filter(|&i| i < self.states.len())
    }

    /// A send started `lag` after its intended time, `at` into the run.
    pub fn on_sent(&mut self, seq: u64, lag: Duration, at: Duration) {
        let Some(i) = self.index(seq) else { return };
        self.states[i] |= SENT;
        self.counts.sent += 1;
        self.histograms.schedule_lag.saturating_record(micros(lag));
        self.bin(at.as_secs() as usize).sent += 1;
    }

    pub fn on_cap_hit(&mut self) {
        self.counts.cap_hits += 1;
    }

    /// `/enqueue` answered (or failed) `since_intended` after the intended send time.
    pub fn on_enqueue(
        &mut self,
        seq: u64,
        outcome: EnqueueOutcome,
        since_intended: Duration,
        at: Duration,
    ) {
        let Some(i) = self.index(seq) else { return };
        self.last_event = self.last_event.max(at);
        let bin_second = at.as_secs() as usize;
        match outcome {
            EnqueueOutcome::Accepted => {
                self.states[i] |= ACCEPTED;
                if self.states[i] & RECORDED != 0 {
                    self.accepted_recorded += 1;
                }
                self.accepted_marked(i);
                self.counts.accepted += 1;
            }
            EnqueueOutcome::Rejected { code } => {
                self.states[i] |= REJECTED;
                self.counts.rejected += 1;
                self.count_failure(&code);
                self.bin(bin_second).rejected += 1;
            }
            EnqueueOutcome::Error { kind } => {
                self.states[i] |= SEND_ERROR;
                self.counts.send_errors += 1;
                self.count_failure(kind);
                self.bin(bin_second).send_errors += 1;
                return;
            }
        }
        self.histograms
            .enqueue
            .saturating_record(micros(since_intended));
    }

    /// Stores a record whose id carries this run's id and `seq`, delivered by `delivery`.
    pub fn on_record(
        &mut self,
        seq: u64,
        record: &LatencyRecord,
        delivery: Delivery,
    ) -> RecordOutcome {
        let Some(i) = self.index(seq) else {
            self.counts.unmatched += 1;
            return RecordOutcome::Unmatched;
        };
        if self.states[i] & RECORDED != 0 {
            if delivery == Delivery::Pull || self.states[i] & PULLED != 0 {
                self.counts.redelivered += 1;
                return RecordOutcome::Redelivered;
            }
            self.counts.duplicates += 1;
            return RecordOutcome::Duplicate;
        }
        // A request given up on whose record still came: it counts as what the record says.
        self.unmark(i);
        if self.states[i] & SENT == 0 {
            // Only a rebuild sees this: the send's journal line was lost with the load tester
            // that made it, and the record proves it was sent (at an unknown lag).
            self.states[i] |= SENT;
            self.counts.sent += 1;
            let second = self.plan.second_of(seq);
            self.bin(second).sent += 1;
        }
        self.states[i] |= RECORDED;
        match delivery {
            Delivery::Push => self.counts.pushed += 1,
            Delivery::Pull => {
                self.states[i] |= PULLED;
                self.counts.pulled += 1;
            }
        }
        if self.states[i] & ACCEPTED != 0 {
            self.accepted_recorded += 1;
        }
        self.counts.completed += 1;
        let completed_at = Duration::from_secs_f64(
            ((record.completed_at_ms - self.start_unix_ms) / 1000.0).clamp(0.0, 1e9),
        );
        self.last_event = self.last_event.max(completed_at);
        let completion_second = completed_at.as_secs() as usize;
        if !record.is_ok() {
            self.counts.failed += 1;
            self.count_failure(record.outcome.as_str());
            self.bin(completion_second).failed += 1;
            return RecordOutcome::Stored;
        }
        self.succeeded(
            seq,
            ms_to_micros(record.latency_ms),
            completed_at,
            record.label.as_deref(),
        );
        let h = &mut self.histograms;
        h.queue_wait
            .saturating_record(ms_to_micros(record.queue_wait_ms));
        if let Some(inference) = record.inference_ms {
            h.inference.saturating_record(ms_to_micros(inference));
        }
        RecordOutcome::Stored
    }

    /// A direct mode's answer (`Err`: no answer, with the kind of failure) to request `seq`,
    /// `since_intended` after its intended send time and `at` into the run. An answer plays the
    /// part of both the `/enqueue` answer and the record: a success or failure is accepted and
    /// completed at once, a refusal for load is `rejected`, no answer is a send error.
    pub fn on_direct(
        &mut self,
        seq: u64,
        answer: Result<DirectAnswer, &'static str>,
        since_intended: Duration,
        at: Duration,
    ) {
        let Some(i) = self.index(seq) else { return };
        let (ok, label) = match answer {
            Err(kind) => {
                return self.on_enqueue(seq, EnqueueOutcome::Error { kind }, since_intended, at);
            }
            Ok(DirectAnswer::Rejected { code }) => {
                return self.on_enqueue(seq, EnqueueOutcome::Rejected { code }, since_intended, at);
            }
            Ok(DirectAnswer::Failed { code }) => (Err(code), None),
            Ok(DirectAnswer::Ok { label }) => (Ok(()), label),
        };
        self.on_enqueue(seq, EnqueueOutcome::Accepted, since_intended, at);
        self.unmark(i);
        self.states[i] |= RECORDED;
        self.accepted_recorded += 1;
        self.counts.completed += 1;
        match ok {
            Ok(()) => self.succeeded(seq, micros(since_intended), at, label.as_deref()),
            Err(code) => {
                self.counts.failed += 1;
                self.count_failure(&code);
                self.bin(at.as_secs() as usize).failed += 1;
            }
        }
    }

    /// Counts a success of request `seq`, completed `at` into the run after `latency` µs.
    fn succeeded(&mut self, seq: u64, latency: u64, at: Duration, label: Option<&str>) {
        self.counts.succeeded += 1;
        self.bin(at.as_secs() as usize).succeeded += 1;
        if let Some(label) = label {
            bounded_count(&mut self.labels, label, "invalid_label");
        }
        self.histograms.latency.saturating_record(latency);
        let sent_second = self.plan.second_of(seq);
        self.bin(sent_second)
            .latency
            .record(latency.min(HIGHEST_MICROS));
    }

    /// Codes come from the other side of the wire: bound their number and length so a
    /// misbehaving peer cannot grow the map without limit.
    fn count_failure(&mut self, code: &str) {
        bounded_count(&mut self.failures, code, "invalid_code");
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    pub fn start_unix_ms(&self) -> f64 {
        self.start_unix_ms
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Failed requests by code: enqueue rejections, send errors and failed outcomes.
    pub fn failures(&self) -> &BTreeMap<String, u64> {
        &self.failures
    }

    /// Successful requests by label (at most 64 labels, then `other`).
    pub fn labels(&self) -> &BTreeMap<String, u64> {
        &self.labels
    }

    pub fn histograms(&self) -> &Histograms {
        &self.histograms
    }

    pub fn seconds(&self) -> &[SecondBin] {
        &self.seconds
    }

    pub fn last_event(&self) -> Duration {
        self.last_event
    }

    /// Accepted requests whose record has not arrived yet and that are not marked missing
    /// (those are not worth waiting for).
    pub fn outstanding(&self) -> u64 {
        self.counts.accepted - self.accepted_recorded - self.marked.accepted
    }

    /// Ids of up to `limit` requests that were sent and accepted but have no record.
    pub fn missing_ids(&self, limit: usize) -> Vec<String> {
        self.states
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s & RECORDED == 0 && s & (REJECTED | SEND_ERROR) == 0)
            .take(limit)
            .map(|(seq, _)| request_id(&self.run_id, seq as u64))
            .collect()
    }
}

/// Counts `key` in `map`; keys come from the other side of the wire, so their number and length
/// are bounded: a misbehaving peer cannot grow the map without limit.
/// An empty or overlong key counts as `invalid`.
fn bounded_count(map: &mut BTreeMap<String, u64>, key: &str, invalid: &str) {
    const MAX_KEYS: usize = 64;
    const MAX_LEN: usize = 64;
    let key = if key.len() > MAX_LEN || key.is_empty() {
        invalid
    } else {
        key
    };
    if let Some(count) = map.get_mut(key) {
        *count += 1;
    } else if map.len() < MAX_KEYS {
        map.insert(key.to_owned(), 1);
    } else {
        *map.entry("other".to_owned()).or_default() += 1;
    }
}

/// The id of request `seq` of a run: `<runId>-<seq>`.
pub fn request_id(run_id: &str, seq: u64) -> String {
    format!("{run_id}-{seq}")
}

/// Splits a request id into run id and seq.
pub fn parse_request_id(id: &str) -> Option<(&str, u64)> {
    let (run, seq) = id.rsplit_once('-')?;
    Some((run, seq.parse().ok()?))
}

#[cfg(test)]
mod tests;
