//! The latency store: the runs this process knows about and the `/storeLatency` intake that
//! matches the dispatcher's records to them by id (`<runId>-<seq>`).
//!
//! Each run's state sits behind its own mutexes, held for a few hundred nanoseconds per event
//! (a flag, a counter, a histogram bucket); nothing awaits while holding one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness_core::wire::{DroppedRecords, LatencyRecord, StoreLatencyResponse};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use harness_core::sync::lock;

use crate::delivery::{Delivery, DeliveryStats, PullStatus, RecordDelivery};
use crate::journal::{Journal, Line, RecordLine};
use crate::ledger::{Ledger, RecordOutcome, Restart, parse_request_id};
use crate::metrics::Metrics;
use crate::sampler::Timeline;
use crate::schedule::ArrivalProcess;
use crate::target::TargetInfo;

/// Runs kept in memory for `/runs/{id}`, reports and late records.
const KEEP_RUNS: usize = 16;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Starting,
    Sending,
    /// Everything sent; waiting for the records of accepted requests.
    Draining,
    Done,
    /// Stopped early (shutdown or cancel); the records collected so far remain.
    Interrupted,
}

impl Phase {
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Starting | Phase::Sending | Phase::Draining)
    }
}

/// What a run was asked to do; fixed when it starts.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub dispatcher_url: String,
    pub arrivals: ArrivalProcess,
    pub max_requests: Option<u64>,
    pub concurrency: usize,
    pub images: usize,
    pub record_delivery: RecordDelivery,
    /// What the requests go to.
    pub target: TargetInfo,
}

/// What the pull path learnt during a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullState {
    pub status: PullStatus,
    /// The dispatcher's latest drop counts for this run.
    pub dispatcher_dropped: DroppedRecords,
}

/// Progress of a run: `GET /runs/{id}` and the library's progress callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub run_id: String,
    pub phase: Phase,
    /// What the requests go to: the dispatcher, or a model server directly.
    pub target: TargetInfo,
    /// Current second of the schedule (1-based; equals `seconds` once sending is over).
    pub second: u64,
    pub seconds: u64,
    pub planned: u64,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub send_errors: u64,
    pub completed: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Accepted requests still waiting for their record.
    pub outstanding: u64,
    pub elapsed_seconds: f64,
    /// Requests sent per second over the run so far.
    pub send_rate: f64,
    pub latency_p99_ms: Option<f64>,
    pub schedule_lag_p99_ms: Option<f64>,
}

/// Everything shared about one run: its ledger, sampled series and phase.
#[derive(Debug)]
pub struct RunState {
    pub info: RunInfo,
    /// Monotonic time of offset zero of the schedule.
    pub start: Instant,
    pub ledger: Mutex<Ledger>,
    pub timeline: Mutex<Timeline>,
    phase: Mutex<Phase>,
    pub pull: Mutex<PullState>,
    /// Woken when records arrive, so the drain can stop as soon as the last one is in.
    pub(crate) records_arrived: Notify,
    /// Where every event of the ledger is also written (`journal.jsonl`), so that a report
    /// survives the process (the `run_events` module writes both).
    pub journal: Journal,
}

impl RunState {
    pub fn new(info: RunInfo, start: Instant, ledger: Ledger) -> Self {
        Self {
            info,
            start,
            ledger: Mutex::new(ledger),
            timeline: Mutex::new(Timeline::default()),
            phase: Mutex::new(Phase::Starting),
            pull: Mutex::new(PullState::default()),
            records_arrived: Notify::new(),
            journal: Journal::disabled(),
        }
    }

    /// The same run, journaling its events to `journal`.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = journal;
        self
    }

    /// Says what a dispatcher restart lost (once per restart), and wakes the drain: the
    /// lost requests are no longer waited for.
    pub fn dispatcher_restarted(&self, restart: &Restart) {
        tracing::warn!(
            run_id = self.id(),
            previous = %restart.previous,
            current = %restart.current,
            lost = restart.lost,
            "the dispatcher restarted: the requests its earlier instance held without a record \
             count as missing (dispatcher restarted)"
        );
        self.records_arrived.notify_waiters();
    }

    pub fn id(&self) -> &str {
        &self.info.run_id
    }

    pub fn phase(&self) -> Phase {
        *lock(&self.phase)
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        *lock(&self.phase) = phase;
    }

    pub fn progress(&self) -> Progress {
        let phase = self.phase();
        let elapsed = self.start.elapsed();
        let ledger = lock(&self.ledger);
        let counts = ledger.counts();
        let seconds = ledger.plan().seconds() as u64;
        let second = if phase == Phase::Sending {
            (elapsed.as_secs() + 1).min(seconds)
        } else if phase == Phase::Starting {
            0
        } else {
            seconds
        };
        let p99 = |h: &hdrhistogram::Histogram<u64>| {
            (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0)
        };
        let h = ledger.histograms();
        Progress {
            target: self.info.target.clone(),
            run_id: self.info.run_id.clone(),
            phase,
            second,
            seconds,
            planned: ledger.plan().total(),
            sent: counts.sent,
            accepted: counts.accepted,
            rejected: counts.rejected,
            send_errors: counts.send_errors,
            completed: counts.completed,
            succeeded: counts.succeeded,
            failed: counts.failed,
            outstanding: ledger.outstanding(),
            elapsed_seconds: elapsed.as_secs_f64(),
            send_rate: counts.sent as f64 / elapsed.as_secs_f64().max(1e-3),
            latency_p99_ms: p99(&h.latency),
            schedule_lag_p99_ms: p99(&h.schedule_lag),
        }
    }

    /// How this run's records came, so far.
    pub fn delivery(&self) -> DeliveryStats {
        let counts = lock(&self.ledger).counts();
        let pull = *lock(&self.pull);
        DeliveryStats {
            mode: self.info.record_delivery,
            pull: pull.status,
            pushed: counts.pushed,
            pulled: counts.pulled,
            redelivered: counts.redelivered,
            dispatcher_dropped: pull.dispatcher_dropped,
        }
    }

    /// Seconds since the schedule's start (zero before it).
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// The runs of this process and the `/storeLatency` intake.
#[derive(Debug, Default)]
pub struct RunStore {
    runs: Mutex<VecDeque<Arc<RunState>>>,
    /// Records whose id names no known run.
    unknown: AtomicU64,
}

impl RunStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a run, forgetting the oldest finished one beyond the limit.
    pub fn insert(&self, run: Arc<RunState>) {
        let mut runs = lock(&self.runs);
        runs.push_back(run);
        while runs.len() > KEEP_RUNS {
            match runs.iter().position(|r| !r.phase().is_active()) {
                Some(i) => drop(runs.remove(i)),
                None => break,
            }
        }
    }

    pub fn get(&self, run_id: &str) -> Option<Arc<RunState>> {
        lock(&self.runs).iter().find(|r| r.id() == run_id).cloned()
    }

    /// The most recently started run.
    pub fn latest(&self) -> Option<Arc<RunState>> {
        lock(&self.runs).back().cloned()
    }

    /// The run that is starting, sending or draining, if any.
    pub fn active(&self) -> Option<Arc<RunState>> {
        lock(&self.runs)
            .iter()
            .rev()
            .find(|r| r.phase().is_active())
            .cloned()
    }

    /// Records whose id named no run this process knows.
    pub fn unknown_records(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }

    /// Stores a batch delivered by `delivery`, matching each record to its run by id.
    pub fn store(
        &self,
        records: &[LatencyRecord],
        delivery: Delivery,
        metrics: &Metrics,
    ) -> StoreLatencyResponse {
        self.store_batch(records, delivery, metrics).0
    }

    /// [`RunStore::store`], returning once the records are in their runs' journals: the
    /// `/storeLatency` answer tells the dispatcher it may forget them.
    pub async fn store_journaled(
        &self,
        records: &[LatencyRecord],
        delivery: Delivery,
        metrics: &Metrics,
    ) -> StoreLatencyResponse {
        let (response, touched) = self.store_batch(records, delivery, metrics);
        for run in touched {
            run.journal.sync().await;
        }
        response
    }

    fn store_batch(
        &self,
        records: &[LatencyRecord],
        delivery: Delivery,
        metrics: &Metrics,
    ) -> (StoreLatencyResponse, Vec<Arc<RunState>>) {
        let mut stored = 0;
        let mut unmatched = 0;
        // Batches from one dispatcher nearly always belong to one run: remember the last
        // lookup instead of scanning the run list per record.
        let mut current: Option<Arc<RunState>> = None;
        let mut touched: Vec<Arc<RunState>> = Vec::new();
        for record in records {
            let mut known_run = false;
            let outcome = match parse_request_id(&record.id) {
                Some((run_id, seq)) => {
                    if current.as_ref().is_none_or(|r| r.id() != run_id) {
                        current = self.get(run_id);
                    }
                    match &current {
                        Some(run) => {
                            known_run = true;
                            if !touched.iter().any(|t| Arc::ptr_eq(t, run)) {
                                touched.push(run.clone());
                            }
                            run.journal
                                .write(Line::Record(RecordLine::new(seq, record, delivery)));
                            lock(&run.ledger).on_record(seq, record, delivery)
                        }
                        None => RecordOutcome::Unmatched,
                    }
                }
                None => RecordOutcome::Unmatched,
            };
            if outcome == RecordOutcome::Unmatched && !known_run {
                self.unknown.fetch_add(1, Ordering::Relaxed);
            }
            count(outcome, metrics, &mut stored, &mut unmatched);
        }
        for run in &touched {
            run.records_arrived.notify_waiters();
        }
        (StoreLatencyResponse { stored, unmatched }, touched)
    }
}

impl RunState {
    /// Stores records pulled from the dispatcher for this run.
    pub fn store_pulled(
        &self,
        records: &[LatencyRecord],
        metrics: &Metrics,
    ) -> StoreLatencyResponse {
        let (mut stored, mut unmatched) = (0, 0);
        {
            let mut ledger = lock(&self.ledger);
            for record in records {
                let outcome = match parse_request_id(&record.id) {
                    Some((run_id, seq)) if run_id == self.id() => {
                        let line = RecordLine::new(seq, record, Delivery::Pull);
                        self.journal.write(Line::Record(line));
                        ledger.on_record(seq, record, Delivery::Pull)
                    }
                    _ => RecordOutcome::Unmatched,
                };
                count(outcome, metrics, &mut stored, &mut unmatched);
            }
        }
        self.records_arrived.notify_waiters();
        StoreLatencyResponse { stored, unmatched }
    }
}

/// Counts what storing one record did, in the metrics and the intake's answer.
fn count(outcome: RecordOutcome, metrics: &Metrics, stored: &mut usize, unmatched: &mut usize) {
    let reason = match outcome {
        RecordOutcome::Stored => {
            *stored += 1;
            metrics.records_stored.inc();
            return;
        }
        RecordOutcome::Duplicate => "duplicate",
        RecordOutcome::Redelivered => "redelivered",
        RecordOutcome::Unmatched => {
            *unmatched += 1;
            "unmatched"
        }
    };
    metrics.records_rejected.with_label_values(&[reason]).inc();
}
