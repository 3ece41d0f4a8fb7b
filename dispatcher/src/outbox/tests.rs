use std::sync::Arc;
use std::time::Duration;

use harness_core::wire::{DroppedRecords, LatencyRecord};

use super::*;
use crate::metrics::Metrics;

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

fn limits(capacity: usize, batch_size: usize) -> Limits {
    Limits {
        capacity,
        max_bytes: usize::MAX,
        retention: Duration::from_secs(600),
        batch_size,
    }
}

fn outbox(limits: Limits) -> (Outbox, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    (Outbox::new(limits, metrics.clone()), metrics)
}

fn ids(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.record.id.as_str()).collect()
}

fn page_ids(page: &RecordsPage) -> Vec<&str> {
    page.records.iter().map(|r| r.id.as_str()).collect()
}

fn dropped(metrics: &Metrics, reason: DropReason) -> u64 {
    metrics
        .delivery
        .dropped
        .with_label_values(&[reason.as_str()])
        .get()
}

#[test]
fn full_outbox_drops_oldest_and_counts_them_for_their_run() {
    let (outbox, metrics) = outbox(limits(3, 2));
    for seq in 1..=5 {
        outbox.submit(record(&format!("run-{seq}")));
    }
    assert_eq!(dropped(&metrics, DropReason::Capacity), 2);
    assert_eq!(metrics.delivery.outbox_length.get(), 3);
    let batch = outbox.take_batch();
    assert_eq!(ids(&batch), ["run-3", "run-4"]);
    // While the batch was out, two more arrived: putting it back overflows the outbox, and
    // the records of the batch, being the oldest, are the ones dropped.
    outbox.submit(record("run-6"));
    outbox.submit(record("run-7"));
    outbox.put_back(batch);
    assert_eq!(dropped(&metrics, DropReason::Capacity), 4);
    let page = outbox.pull("run", 0, 10);
    assert_eq!(page_ids(&page), ["run-5", "run-6", "run-7"]);
    assert_eq!(
        page.dropped,
        DroppedRecords {
            capacity: 4,
            ..DroppedRecords::default()
        }
    );
}

#[test]
fn the_byte_bound_drops_too() {
    let mut limits = limits(1000, 10);
    limits.max_bytes = 3 * footprint(&record("run-1")) + 1;
    let (outbox, metrics) = outbox(limits);
    for seq in 1..=5 {
        outbox.submit(record(&format!("run-{seq}")));
    }
    assert_eq!(outbox.len(), 3);
    assert_eq!(dropped(&metrics, DropReason::Capacity), 2);
    assert!(metrics.delivery.outbox_bytes.get() as usize <= limits.max_bytes);
}

#[test]
fn a_pull_hands_out_its_run_in_order_and_the_next_pull_acknowledges_it() {
    let (outbox, metrics) = outbox(limits(100, 10));
    for id in ["a-1", "b-1", "a-2", "a-3", "b-2"] {
        outbox.submit(record(id));
    }
    let first = outbox.pull("a", 0, 2);
    assert_eq!(page_ids(&first), ["a-1", "a-2"]);
    assert!(first.more);
    // Not acknowledged yet: asking again from the same cursor hands them out again.
    let again = outbox.pull("a", 0, 2);
    assert_eq!(page_ids(&again), ["a-1", "a-2"]);
    let second = outbox.pull("a", again.cursor, 10);
    assert_eq!(page_ids(&second), ["a-3"]);
    assert!(!second.more);
    let last = outbox.pull("a", second.cursor, 10);
    assert!(last.records.is_empty());
    assert_eq!(last.cursor, second.cursor);
    // Run b was never touched.
    assert_eq!(outbox.len(), 2);
    assert_eq!(metrics.delivery.pulled.get(), 5);
}

#[test]
fn the_reporter_skips_handed_out_records_and_a_failed_push_is_pulled_later() {
    let (outbox, _) = outbox(limits(100, 10));
    for seq in 1..=4 {
        outbox.submit(record(&format!("r-{seq}")));
    }
    let batch = outbox.take_batch();
    assert_eq!(ids(&batch), ["r-1", "r-2", "r-3", "r-4"]);
    outbox.submit(record("r-5"));
    outbox.submit(record("r-6"));
    // A pull while the batch is out sees only what arrived since.
    let page = outbox.pull("r", 0, 10);
    assert_eq!(page_ids(&page), ["r-5", "r-6"]);
    // The post failed: the batch is back, below the puller's cursor; the reporter, trying
    // again, must not take the handed-out records.
    outbox.put_back(batch);
    let retry = outbox.take_batch();
    assert_eq!(ids(&retry), ["r-1", "r-2", "r-3", "r-4"]);
    outbox.put_back(retry);
    // The next pull acknowledges r-5 and r-6 and hands out the put-back records, not lost
    // below the cursor.
    let next = outbox.pull("r", page.cursor, 10);
    assert_eq!(page_ids(&next), ["r-1", "r-2", "r-3", "r-4"]);
    assert_eq!(next.cursor, page.cursor);
    assert!(outbox.pull("r", next.cursor, 10).records.is_empty());
    assert!(outbox.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_lease_lapses_so_the_reporter_can_push_what_a_gone_puller_held() {
    let (outbox, _) = outbox(limits(100, 10));
    outbox.submit(record("r-1"));
    assert_eq!(outbox.pull("r", 0, 10).records.len(), 1);
    assert!(outbox.take_batch().is_empty());
    tokio::time::advance(LEASE).await;
    assert_eq!(ids(&outbox.take_batch()), ["r-1"]);
}

#[tokio::test(start_paused = true)]
async fn records_nobody_collects_expire_and_are_counted() {
    let mut limits = limits(100, 10);
    limits.retention = Duration::from_secs(60);
    let (outbox, metrics) = outbox(limits);
    outbox.submit(record("r-1"));
    tokio::time::advance(Duration::from_secs(30)).await;
    outbox.submit(record("r-2"));
    outbox.expire();
    assert_eq!(outbox.len(), 2);
    tokio::time::advance(Duration::from_secs(30)).await;
    outbox.expire();
    assert_eq!(outbox.len(), 1);
    assert_eq!(dropped(&metrics, DropReason::Retention), 1);
    assert_eq!(outbox.pull("r", 0, 10).dropped.retention, 1);
    assert_eq!(outbox.drop_all(), 1);
    assert_eq!(dropped(&metrics, DropReason::Shutdown), 1);
    assert_eq!(metrics.delivery.outbox_bytes.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_pull_wakes_when_its_run_gets_a_record() {
    let (outbox, _) = outbox(limits(100, 10));
    let outbox = Arc::new(outbox);
    let waiter = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.pull_wait("r", 0, 10, Duration::from_secs(20)).await })
    };
    tokio::time::advance(Duration::from_secs(1)).await;
    outbox.submit(record("other-1"));
    tokio::time::advance(Duration::from_secs(1)).await;
    outbox.submit(record("r-1"));
    let page = waiter.await.expect("waiter");
    assert_eq!(page_ids(&page), ["r-1"]);
    // With nothing for the run, the wait ends at its deadline with an empty page.
    let empty = outbox
        .pull_wait("r", page.cursor, 10, Duration::from_secs(5))
        .await;
    assert!(empty.records.is_empty());
}

#[test]
fn run_names_follow_the_load_testers_ids() {
    assert_eq!(
        run_of("20250612T153012Z-4f2a-17"),
        Some("20250612T153012Z-4f2a")
    );
    assert_eq!(run_of("plain"), None);
    assert_eq!(run_of("run-x"), None);
    assert_eq!(run_of("-5"), None);
    assert!(in_run(&record("abc-1"), "abc"));
    assert!(!in_run(&record("abcd-1"), "abc"));
}
