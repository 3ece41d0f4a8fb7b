//! The outbox of latency records, and their delivery to the load tester (`POST /storeLatency`,
//! a JSON array).
//!
//! Records go into a bounded [`Outbox`]; a [`Reporter`] task sends them in batches of
//! `--report-batch-size`, or whatever is there every `--report-interval`. When the receiver is
//! down the batch goes back to the front of the outbox and the reporter retries with back-off;
//! finishing items never waits for it. A full outbox drops its oldest records, counted in
//! `dispatcher_report_dropped_total` and logged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use harness_core::wire::LatencyRecord;
use reqwest::{StatusCode, Url};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// One report POST that takes longer than this has failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between retries while the receiver is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Records waiting for delivery, oldest first.
#[derive(Debug)]
pub struct Outbox {
    records: Mutex<VecDeque<LatencyRecord>>,
    /// `false` when reporting is disabled (`--report-url ""`): records are not kept.
    enabled: bool,
    capacity: usize,
    batch_size: usize,
    /// Woken when a full batch is waiting.
    batch_ready: Notify,
    dropped_since_log: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Outbox {
    pub fn new(enabled: bool, capacity: usize, batch_size: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            records: Mutex::new(VecDeque::new()),
            enabled,
            capacity,
            batch_size,
            batch_ready: Notify::new(),
            dropped_since_log: AtomicU64::new(0),
            metrics,
        }
    }

    /// Queues a record for delivery. Never waits.
    pub fn submit(&self, record: LatencyRecord) {
        if !self.enabled {
            return;
        }
        let mut records = self.lock();
        records.push_back(record);
        self.trim(&mut records);
        let full_batch = records.len() >= self.batch_size;
        drop(records);
        if full_batch {
            self.batch_ready.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take_batch(&self) -> Vec<LatencyRecord> {
        let mut records = self.lock();
        let n = records.len().min(self.batch_size);
        let batch = records.drain(..n).collect();
        self.metrics.outbox_length.set(records.len() as i64);
        batch
    }

    fn take_batch_all(&self) -> Vec<LatencyRecord> {
        let mut records = self.lock();
        let all = records.drain(..).collect();
        self.metrics.outbox_length.set(0);
        all
    }

    /// Puts an undelivered batch back in front, so order is kept; if records arrived meanwhile
    /// and the outbox overflows, these oldest ones are the first to go.
    fn put_back(&self, batch: Vec<LatencyRecord>) {
        let mut records = self.lock();
        for record in batch.into_iter().rev() {
            records.push_front(record);
        }
        self.trim(&mut records);
    }

    fn trim(&self, records: &mut VecDeque<LatencyRecord>) {
        let excess = records.len().saturating_sub(self.capacity);
        if excess > 0 {
            records.drain(..excess);
            self.count_dropped(excess as u64);
        }
        self.metrics.outbox_length.set(records.len() as i64);
    }

    fn count_dropped(&self, n: u64) {
        self.metrics.report_dropped.inc_by(n);
        self.dropped_since_log.fetch_add(n, Ordering::Relaxed);
    }

    /// Logs drops since the last call; called by the reporter so a flood of drops is one line
    /// per report cycle, not one per record.
    fn log_drops(&self) {
        let n = self.dropped_since_log.swap(0, Ordering::Relaxed);
        if n > 0 {
            tracing::warn!(
                dropped = n,
                capacity = self.capacity,
                "outbox full: oldest latency records dropped"
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<LatencyRecord>> {
        harness_core::sync::lock(&self.records)
    }
}

/// Why a batch was not delivered. Every kind but [`SendError::Refused`] is worth another try.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// Unreachable or timed out.
    #[error("{0}")]
    Unreachable(#[source] reqwest::Error),
    /// 5xx, 408 or 429: the receiver is there but cannot take the batch now.
    #[error("{0}")]
    Unavailable(StatusCode),
    /// The shutdown flush ran out of time in the middle of a send.
    #[error("flush deadline")]
    FlushDeadline,
    /// The receiver refuses this batch (4xx): retrying the same bytes cannot help.
    #[error("receiver refused the batch with {0}")]
    Refused(StatusCode),
}

/// Sends the outbox to the report URL until told to stop, then flushes it.
#[derive(Debug)]
pub struct Reporter {
    pub client: reqwest::Client,
    pub url: Url,
    pub outbox: Arc<Outbox>,
    pub interval: Duration,
    pub metrics: Arc<Metrics>,
}

impl Reporter {
    /// Delivers until `closing` fires, then keeps trying for at most `flush_timeout` to deliver
    /// what is left; records still undelivered then are counted as dropped.
    pub async fn run(self, closing: CancellationToken, flush_timeout: Duration) {
        let mut backoff = Backoff::new(self.interval);
        while !closing.is_cancelled() {
            tokio::select! {
                () = self.outbox.batch_ready.notified() => {}
                () = tokio::time::sleep(self.interval) => {}
                () = closing.cancelled() => break,
            }
            self.outbox.log_drops();
            while let Some(delay) = self.send_available(&mut backoff, None).await {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = closing.cancelled() => break,
                }
            }
        }
        self.flush(Instant::now() + flush_timeout, &mut backoff)
            .await;
    }

    async fn flush(&self, deadline: Instant, backoff: &mut Backoff) {
        while Instant::now() < deadline {
            match self.send_available(backoff, Some(deadline)).await {
                None => break,
                Some(delay) => {
                    tokio::time::sleep_until((Instant::now() + delay).min(deadline)).await
                }
            }
        }
        self.outbox.log_drops();
        let left = self.outbox.take_batch_all();
        if !left.is_empty() {
            self.outbox.count_dropped(left.len() as u64);
            tracing::warn!(
                lost = left.len(),
                url = %self.url,
                "report URL unreachable at shutdown; latency records lost"
            );
        }
    }

    /// Sends batches until the outbox is empty (`None`) or a send fails (`Some(retry delay)`).
    async fn send_available(
        &self,
        backoff: &mut Backoff,
        deadline: Option<Instant>,
    ) -> Option<Duration> {
        loop {
            let batch = self.outbox.take_batch();
            if batch.is_empty() {
                return None;
            }
            let sent = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.send(&batch))
                    .await
                    .unwrap_or(Err(SendError::FlushDeadline)),
                None => self.send(&batch).await,
            };
            match sent {
                Ok(()) => {
                    if backoff.failing() {
                        tracing::info!(url = %self.url, "report URL reachable again");
                    }
                    backoff.reset();
                    self.metrics.reported.inc_by(batch.len() as u64);
                }
                Err(SendError::Refused(status)) => {
                    self.metrics.report_failures.inc();
                    self.outbox.count_dropped(batch.len() as u64);
                    tracing::error!(%status, records = batch.len(), url = %self.url, "report refused; batch dropped");
                }
                Err(err) => {
                    self.metrics.report_failures.inc();
                    if !backoff.failing() {
                        tracing::warn!(%err, url = %self.url, "cannot deliver latency records; keeping them and retrying");
                    }
                    self.outbox.put_back(batch);
                    return Some(backoff.next());
                }
            }
        }
    }

    async fn send(&self, batch: &[LatencyRecord]) -> Result<(), SendError> {
        let response = self
            .client
            .post(self.url.clone())
            .json(batch)
            .timeout(SEND_TIMEOUT)
            .send()
            .await
            .map_err(SendError::Unreachable)?;
        let status = response.status();
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                Err(SendError::Unavailable(status))
            }
            s if s.is_client_error() => Err(SendError::Refused(s)),
            s => Err(SendError::Unavailable(s)),
        }
    }
}

/// Exponential back-off between report retries, from the report interval up to [`MAX_BACKOFF`].
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    current: Option<Duration>,
}

impl Backoff {
    fn new(initial: Duration) -> Self {
        Self {
            initial: initial.min(MAX_BACKOFF),
            current: None,
        }
    }

    fn failing(&self) -> bool {
        self.current.is_some()
    }

    fn next(&mut self) -> Duration {
        let next = match self.current {
            None => self.initial,
            Some(d) => (d * 2).min(MAX_BACKOFF),
        };
        self.current = Some(next);
        next
    }

    fn reset(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> LatencyRecord {
        LatencyRecord {
            id: id.into(),
            enqueued_at_ms: 0.0,
            dispatched_at_ms: None,
            completed_at_ms: 0.0,
            queue_wait_ms: 0.0,
            inference_ms: None,
            latency_ms: 0.0,
            attempts: 0,
            outcome: "ok".into(),
            http_status: None,
            label: None,
            endpoint: None,
        }
    }

    fn ids(batch: &[LatencyRecord]) -> Vec<&str> {
        batch.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn full_outbox_drops_oldest_and_counts_them() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let outbox = Outbox::new(true, 3, 2, metrics.clone());
        for id in ["a", "b", "c", "d", "e"] {
            outbox.submit(record(id));
        }
        assert_eq!(metrics.report_dropped.get(), 2);
        assert_eq!(metrics.outbox_length.get(), 3);
        let batch = outbox.take_batch();
        assert_eq!(ids(&batch), ["c", "d"]);
        // While the batch was out, two more arrived: putting it back overflows the outbox, and
        // the records of the batch, being the oldest, are the ones dropped.
        outbox.submit(record("f"));
        outbox.submit(record("g"));
        outbox.put_back(batch);
        assert_eq!(metrics.report_dropped.get(), 4);
        assert_eq!(ids(&outbox.take_batch_all()), ["e", "f", "g"]);
    }

    #[test]
    fn disabled_outbox_keeps_nothing() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let outbox = Outbox::new(false, 3, 2, metrics.clone());
        outbox.submit(record("a"));
        assert!(outbox.is_empty());
        assert_eq!(metrics.report_dropped.get(), 0);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250));
        let seq: Vec<_> = (0..6).map(|_| b.next().as_millis()).collect();
        assert_eq!(seq, [250, 500, 1000, 2000, 4000, 5000]);
        b.reset();
        assert!(!b.failing());
        assert_eq!(b.next(), Duration::from_millis(250));
    }
}
