//! The latency record of one item, built from monotonic instants, and the [`Recorder`] that
//! counts every finished item and hands its record to the outbox.
//!
//! Only the enqueue time is read from the wall clock; every later timestamp is the enqueue time
//! plus a monotonic duration, so `latencyMs = completedAtMs - enqueuedAtMs` holds exactly and a
//! wall-clock step (NTP) cannot produce negative waits.

use std::sync::Arc;

use harness_core::wire::{LatencyRecord, Outcome};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::queue::Item;

/// Where every item ends: the one place that counts a finished item (`completed_total`, the
/// latency histogram) and queues its record, so `enqueued_total = Σ completed_total +
/// queue_length + in_flight` holds whichever path the item took (sent, or given up at shutdown).
#[derive(Debug, Clone)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    outbox: Arc<Outbox>,
}

impl Recorder {
    pub fn new(metrics: Arc<Metrics>, outbox: Arc<Outbox>) -> Self {
        Self { metrics, outbox }
    }

    /// Accounts for a finished item and queues its record for the load tester.
    pub fn finish(&self, record: LatencyRecord) {
        self.metrics.complete(&record.outcome);
        self.metrics.latency.observe(record.latency_ms / 1000.0);
        self.outbox.submit(record);
    }
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub outcome: Outcome,
    /// Top-1 label on success.
    pub label: Option<String>,
}

/// What the upstream loop learned while it worked on an item.
#[derive(Debug, Clone, Default)]
pub struct Attempts {
    pub count: u32,
    /// Status of the last response, if any arrived.
    pub http_status: Option<u16>,
    /// Base URL of the last endpoint tried.
    pub endpoint: Option<String>,
}

/// The record of an item that was dispatched at `dispatched_at` and finished now.
pub fn dispatched(
    item: &Item,
    dispatched_at: Instant,
    attempts: Attempts,
    finished: Finished,
) -> LatencyRecord {
    let completed_at = Instant::now();
    let queue_wait_ms = millis(dispatched_at - item.enqueued_at);
    let latency_ms = millis(completed_at - item.enqueued_at);
    LatencyRecord {
        id: item.id.clone(),
        enqueued_at_ms: item.enqueued_at_ms,
        dispatched_at_ms: Some(item.enqueued_at_ms + queue_wait_ms),
        completed_at_ms: item.enqueued_at_ms + latency_ms,
        queue_wait_ms,
        inference_ms: Some(millis(completed_at - dispatched_at)),
        latency_ms,
        attempts: attempts.count,
        outcome: finished.outcome,
        http_status: attempts.http_status,
        label: finished.label,
        endpoint: attempts.endpoint,
    }
}

/// The record of an item that never left the queue (the shutdown deadline passed).
pub fn never_dispatched(item: &Item, outcome: Outcome) -> LatencyRecord {
    let latency_ms = millis(Instant::now() - item.enqueued_at);
    LatencyRecord {
        id: item.id.clone(),
        enqueued_at_ms: item.enqueued_at_ms,
        dispatched_at_ms: None,
        completed_at_ms: item.enqueued_at_ms + latency_ms,
        queue_wait_ms: latency_ms,
        inference_ms: None,
        latency_ms,
        attempts: 0,
        outcome,
        http_status: None,
        label: None,
        endpoint: None,
    }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn times_add_up() {
        let item = Item {
            id: "a".into(),
            image: bytes::Bytes::new(),
            enqueued_at: Instant::now(),
            enqueued_at_ms: 1_000_000.0,
        };
        tokio::time::advance(Duration::from_millis(300)).await;
        let dispatched_at = Instant::now();
        tokio::time::advance(Duration::from_millis(50)).await;
        let attempts = Attempts {
            count: 2,
            http_status: Some(200),
            endpoint: Some("http://a:1".into()),
        };
        let finished = Finished {
            outcome: "ok".into(),
            label: Some("espresso".into()),
        };
        let r = dispatched(&item, dispatched_at, attempts, finished);
        assert_eq!(r.queue_wait_ms, 300.0);
        assert_eq!(r.inference_ms, Some(50.0));
        assert_eq!(r.latency_ms, 350.0);
        assert_eq!(r.dispatched_at_ms, Some(1_000_300.0));
        assert_eq!(r.completed_at_ms, 1_000_350.0);
        assert_eq!(r.attempts, 2);
        assert!(r.is_ok());

        let r = never_dispatched(&item, Outcome::Shutdown);
        assert_eq!(r.dispatched_at_ms, None);
        assert_eq!(r.latency_ms, 350.0);
        assert_eq!(r.queue_wait_ms, 350.0);
        assert_eq!(r.outcome, "shutdown");
    }
}
