//! The outbox of latency records, and the two ways they leave it: pushed to the load tester's
//! `POST /storeLatency` (a JSON array) by the [`Reporter`], or pulled by the load tester with
//! `GET /records?runId=…&after=…` ([`Outbox::pull`]).
//!
//! A record stays until one path has delivered it, so with both on no record is delivered
//! twice except when a pulled page is lost on the way and asked for again:
//! - the reporter *takes* a batch out while it posts it and puts it back if the post fails;
//! - a pull *hands out* a page and keeps it until the next pull of that run acknowledges it
//!   (`after` at or past its cursor); the reporter leaves handed-out records alone for
//!   [`LEASE`], in case that puller is gone.
//!
//! The outbox is bounded by count (`--outbox-capacity`) and bytes (`--outbox-max-bytes`), and
//! a record nobody collects leaves after `--record-retention`. Every record dropped is counted
//! in `dispatcher_report_dropped_total{reason}`, logged once per sweep, and reported to the
//! puller of its run as a [`DroppedRecords`] count, so a load tester can say why a request is
//! missing.

mod push;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use harness_core::wire::{DropReason, DroppedRecords, LatencyRecord, RecordsPage};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

pub use push::Reporter;

/// How long a handed-out page is reserved for its puller before the reporter may push it.
pub const LEASE: Duration = Duration::from_secs(30);
/// Runs whose drop counts are remembered for their pullers.
const REMEMBERED_RUNS: usize = 256;
/// How often records past their retention are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The outbox's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub capacity: usize,
    pub max_bytes: usize,
    pub retention: Duration,
    /// Records per push.
    pub batch_size: usize,
}

/// One record waiting for delivery.
#[derive(Debug)]
struct Entry {
    /// Position in arrival order, the pull path's cursor.
    cursor: u64,
    record: LatencyRecord,
    bytes: usize,
    arrived: Instant,
    /// When a pull last handed it out.
    handed_out: Option<Instant>,
}

impl Entry {
    fn is_leased(&self, now: Instant) -> bool {
        self.handed_out
            .is_some_and(|at| now.saturating_duration_since(at) < LEASE)
    }
}

/// Records waiting for delivery, oldest first (nearly: a failed push puts its batch back in
/// front).
#[derive(Debug)]
pub struct Outbox {
    log: Mutex<Log>,
    limits: Limits,
    /// Woken when a full batch is waiting for the reporter.
    batch_ready: Notify,
    /// Woken when any record arrives, for waiting pulls.
    arrived: Notify,
    dropped_since_log: AtomicU64,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct Log {
    entries: VecDeque<Entry>,
    bytes: usize,
    next_cursor: u64,
    drops: RunDrops,
}

impl Outbox {
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        Self {
            log: Mutex::new(Log {
                next_cursor: 1,
                ..Log::default()
            }),
            limits,
            batch_ready: Notify::new(),
            arrived: Notify::new(),
            dropped_since_log: AtomicU64::new(0),
            metrics,
        }
    }

    /// Keeps a record until it is delivered. Never waits.
    pub fn submit(&self, record: LatencyRecord) {
        let mut log = self.lock();
        let cursor = log.next_cursor;
        log.next_cursor += 1;
        let bytes = footprint(&record);
        log.bytes += bytes;
        log.entries.push_back(Entry {
            cursor,
            record,
            bytes,
            arrived: Instant::now(),
            handed_out: None,
        });
        self.trim(&mut log);
        let full_batch = log.entries.len() >= self.limits.batch_size;
        drop(log);
        self.arrived.notify_waiters();
        if full_batch {
            self.batch_ready.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pull path: acknowledges the records of `run` handed out up to `after`, then hands
    /// out the oldest `limit` records of `run` still here (records put back by a failed push
    /// may sit below `after`; they come too).
    pub fn pull(&self, run: &str, after: u64, limit: usize) -> RecordsPage {
        let now = Instant::now();
        let mut log = self.lock();
        let before = log.entries.len();
        let mut freed = 0;
        log.entries.retain(|e| {
            let acked = e.cursor <= after && e.handed_out.is_some() && in_run(&e.record, run);
            if acked {
                freed += e.bytes;
            }
            !acked
        });
        log.bytes -= freed;
        let mut page: Vec<&mut Entry> = log
            .entries
            .iter_mut()
            .filter(|e| in_run(&e.record, run))
            .collect();
        page.sort_unstable_by_key(|e| e.cursor);
        let more = page.len() > limit;
        page.truncate(limit);
        let mut cursor = after;
        let records: Vec<LatencyRecord> = page
            .into_iter()
            .map(|e| {
                e.handed_out = Some(now);
                cursor = cursor.max(e.cursor);
                e.record.clone()
            })
            .collect();
        let dropped = log.drops.of(run);
        let left = log.entries.len();
        self.set_gauges(&log);
        drop(log);
        if left < before {
            tracing::debug!(run, acknowledged = before - left, "records collected");
        }
        self.metrics.delivery.pulled.inc_by(records.len() as u64);
        RecordsPage {
            records,
            cursor,
            more,
            dropped,
            // The outbox knows nothing of the process; the route fills it in.
            instance_id: String::new(),
        }
    }

    /// Like [`Outbox::pull`], waiting up to `wait` for a record of `run` when there is none.
    pub async fn pull_wait(
        &self,
        run: &str,
        after: u64,
        limit: usize,
        wait: Duration,
    ) -> RecordsPage {
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            // Registered before looking, so a record submitted in between still wakes us.
            arrived.as_mut().enable();
            let page = self.pull(run, after, limit);
            if !page.records.is_empty() || Instant::now() >= deadline {
                return page;
            }
            tokio::select! {
                () = &mut arrived => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Takes up to a batch of records that no puller holds, for the reporter to push.
    fn take_batch(&self) -> Vec<Entry> {
        let now = Instant::now();
        let mut log = self.lock();
        let mut batch = Vec::new();
        let mut leased = Vec::new();
        while batch.len() < self.limits.batch_size {
            let Some(entry) = log.entries.pop_front() else {
                break;
            };
            if entry.is_leased(now) {
                leased.push(entry);
            } else {
                log.bytes -= entry.bytes;
                batch.push(entry);
            }
        }
        for entry in leased.into_iter().rev() {
            log.entries.push_front(entry);
        }
        self.set_gauges(&log);
        batch
    }

    /// Puts an undelivered batch back in front; if records arrived meanwhile and the outbox
    /// overflows, these oldest ones are the first to go.
    fn put_back(&self, batch: Vec<Entry>) {
        let mut log = self.lock();
        for entry in batch.into_iter().rev() {
            log.bytes += entry.bytes;
            log.entries.push_front(entry);
        }
        self.trim(&mut log);
        drop(log);
        // A puller may be waiting for exactly these.
        self.arrived.notify_waiters();
    }

    /// Drops every record of `batch` for `reason`.
    fn drop_batch(&self, batch: &[Entry], reason: DropReason) {
        let mut log = self.lock();
        self.count_dropped(&mut log, batch.iter(), reason);
    }

    /// Drops what is left (the dispatcher is stopping), counted as `shutdown`; returns how many.
    pub fn drop_all(&self) -> usize {
        let mut log = self.lock();
        let left: Vec<Entry> = log.entries.drain(..).collect();
        log.bytes = 0;
        self.count_dropped(&mut log, left.iter(), DropReason::Shutdown);
        self.set_gauges(&log);
        left.len()
    }

    /// Drops the records older than the retention.
    pub fn expire(&self) {
        let now = Instant::now();
        let retention = self.limits.retention;
        let mut log = self.lock();
        let expired = |e: &Entry| now.saturating_duration_since(e.arrived) >= retention;
        if !log.entries.front().is_some_and(expired) {
            return;
        }
        let (gone, kept): (Vec<Entry>, Vec<Entry>) = log.entries.drain(..).partition(expired);
        log.entries = kept.into();
        log.bytes -= gone.iter().map(|e| e.bytes).sum::<usize>();
        self.count_dropped(&mut log, gone.iter(), DropReason::Retention);
        self.set_gauges(&log);
    }

    /// Sweeps out expired records every second until `stop`.
    pub async fn expire_until(&self, stop: CancellationToken) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stop.cancelled() => return,
            }
            self.expire();
            self.log_drops();
        }
    }

    /// Waits until every record is delivered or `deadline` passes; true when empty.
    pub async fn wait_empty(&self, deadline: Instant) -> bool {
        while !self.is_empty() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    fn trim(&self, log: &mut Log) {
        let mut gone = Vec::new();
        while log.entries.len() > self.limits.capacity || log.bytes > self.limits.max_bytes {
            let Some(entry) = log.entries.pop_front() else {
                break;
            };
            log.bytes -= entry.bytes;
            gone.push(entry);
        }
        self.count_dropped(log, gone.iter(), DropReason::Capacity);
        self.set_gauges(log);
    }

    fn count_dropped<'a>(
        &self,
        log: &mut Log,
        gone: impl Iterator<Item = &'a Entry>,
        reason: DropReason,
    ) {
        let mut n = 0;
        for entry in gone {
            n += 1;
            log.drops.add(&entry.record.id, reason);
        }
        if n > 0 {
            self.metrics.delivery.drop_records(reason, n);
            self.dropped_since_log.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Logs drops since the last call: one line per sweep or report cycle, not one per record.
    fn log_drops(&self) {
        let n = self.dropped_since_log.swap(0, Ordering::Relaxed);
        if n > 0 {
            tracing::warn!(
                dropped = n,
                capacity = self.limits.capacity,
                max_bytes = self.limits.max_bytes,
                retention = ?self.limits.retention,
                "latency records dropped before anyone collected them \
                 (see dispatcher_report_dropped_total by reason)"
            );
        }
    }

    fn set_gauges(&self, log: &Log) {
        let delivery = &self.metrics.delivery;
        delivery.outbox_length.set(log.entries.len() as i64);
        delivery.outbox_bytes.set(log.bytes as i64);
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        harness_core::sync::lock(&self.log)
    }
}

/// Whether `record` belongs to `run`: its id is `<run>-<sequence>`, as the load tester names
/// its requests.
fn in_run(record: &LatencyRecord, run: &str) -> bool {
    record
        .id
        .strip_prefix(run)
        .is_some_and(|rest| rest.starts_with('-'))
}

/// The run named by an id of the load tester's form `<run>-<sequence number>`.
fn run_of(id: &str) -> Option<&str> {
    let (run, seq) = id.rsplit_once('-')?;
    (!run.is_empty() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit())).then_some(run)
}

/// Memory a record holds in the outbox, approximately.
fn footprint(record: &LatencyRecord) -> usize {
    size_of::<Entry>()
        + record.id.len()
        + record.outcome.as_str().len()
        + record.label.as_ref().map_or(0, String::len)
        + record.endpoint.as_ref().map_or(0, String::len)
}

/// Drop counts of the most recent runs, for their pullers.
#[derive(Debug, Default)]
struct RunDrops {
    by_run: HashMap<String, DroppedRecords>,
    order: VecDeque<String>,
}

impl RunDrops {
    fn add(&mut self, id: &str, reason: DropReason) {
        let Some(run) = run_of(id) else {
            return;
        };
        if let Some(counts) = self.by_run.get_mut(run) {
            counts.add(reason, 1);
            return;
        }
        if self.order.len() == REMEMBERED_RUNS
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_run.remove(&oldest);
        }
        let mut counts = DroppedRecords::default();
        counts.add(reason, 1);
        self.by_run.insert(run.to_owned(), counts);
        self.order.push_back(run.to_owned());
    }

    fn of(&self, run: &str) -> DroppedRecords {
        self.by_run.get(run).copied().unwrap_or_default()
    }
}
