use super::*;
use crate::delivery::Delivery;
use crate::schedule::Arrivals;
use crate::target::DirectAnswer;
use crate::workload::Workload;

fn record(id: &str, latency_ms: f64, outcome: &str) -> LatencyRecord {
    LatencyRecord {
        id: id.into(),
        enqueued_at_ms: 1_000.0,
        dispatched_at_ms: Some(1_001.0),
        completed_at_ms: 1_000.0 + latency_ms,
        queue_wait_ms: 1.0,
        inference_ms: Some(latency_ms - 1.0),
        latency_ms,
        attempts: 1,
        outcome: outcome.into(),
        http_status: Some(200),
        label: None,
        endpoint: None,
    }
}

#[test]
fn outcomes_are_counted_once_whatever_the_arrival_order() {
    let plan = Arc::new(Plan::new(
        &Workload::parse("4", "w").unwrap(),
        Arrivals::Uniform,
        None,
    ));
    let mut ledger = Ledger::new("r", plan, 1_000.0);
    let at = Duration::from_millis(10);
    for seq in 0..4 {
        ledger.on_sent(seq, Duration::from_micros(100), at);
    }
    // Request 0: its record overtakes the /enqueue answer.
    assert_eq!(
        ledger.on_record(0, &record("r-0", 50.0, "ok"), Delivery::Push),
        RecordOutcome::Stored
    );
    ledger.on_enqueue(0, EnqueueOutcome::Accepted, at, at);
    // Request 1: the usual order, then a duplicate.
    ledger.on_enqueue(1, EnqueueOutcome::Accepted, at, at);
    assert_eq!(ledger.outstanding(), 1);
    ledger.on_record(1, &record("r-1", 70.0, "upstream_timeout"), Delivery::Push);
    assert_eq!(
        ledger.on_record(1, &record("r-1", 70.0, "ok"), Delivery::Push),
        RecordOutcome::Duplicate
    );
    // Request 2 is rejected, request 3 never answers; seq 9 is not in the plan.
    let code = "queue_full".to_owned();
    ledger.on_enqueue(2, EnqueueOutcome::Rejected { code }, at, at);
    assert_eq!(
        ledger.on_record(9, &record("r-9", 1.0, "ok"), Delivery::Push),
        RecordOutcome::Unmatched
    );

    let c = ledger.counts();
    assert_eq!((c.sent, c.accepted, c.rejected, c.completed), (4, 2, 1, 2));
    assert_eq!(
        (c.succeeded, c.failed, c.duplicates, c.unmatched),
        (1, 1, 1, 1)
    );
    assert_eq!(ledger.outstanding(), 0);
    assert_eq!(ledger.missing_ids(10), ["r-3"]);
    assert_eq!(ledger.failures().get("queue_full"), Some(&1));
    assert_eq!(ledger.failures().get("upstream_timeout"), Some(&1));
    assert_eq!(ledger.histograms().latency.len(), 1);
    // Completion at 1 050 ms on a run that started at 1 000 ms: second 0.
    assert_eq!(ledger.seconds()[0].succeeded, 1);
    // A second with few successes keeps their latencies exactly.
    assert_eq!(
        ledger.seconds()[0].latency.value_at_quantile(0.99),
        Some(50_000)
    );
}

#[test]
fn a_record_delivered_by_both_paths_counts_once_and_is_not_a_duplicate() {
    let plan = Arc::new(Plan::new(
        &Workload::parse("3", "w").unwrap(),
        Arrivals::Uniform,
        None,
    ));
    let mut ledger = Ledger::new("r", plan, 1_000.0);
    let at = Duration::from_millis(10);
    for seq in 0..3 {
        ledger.on_sent(seq, Duration::from_micros(100), at);
        ledger.on_enqueue(seq, EnqueueOutcome::Accepted, at, at);
    }
    let ok = |seq: u64| record(&format!("r-{seq}"), 50.0, "ok");
    // 0: pushed, then pulled too. 1: pulled, then pushed too. 2: pulled twice (a lost page).
    assert_eq!(
        ledger.on_record(0, &ok(0), Delivery::Push),
        RecordOutcome::Stored
    );
    assert_eq!(
        ledger.on_record(0, &ok(0), Delivery::Pull),
        RecordOutcome::Redelivered
    );
    assert_eq!(
        ledger.on_record(1, &ok(1), Delivery::Pull),
        RecordOutcome::Stored
    );
    assert_eq!(
        ledger.on_record(1, &ok(1), Delivery::Push),
        RecordOutcome::Redelivered
    );
    assert_eq!(
        ledger.on_record(2, &ok(2), Delivery::Pull),
        RecordOutcome::Stored
    );
    assert_eq!(
        ledger.on_record(2, &ok(2), Delivery::Pull),
        RecordOutcome::Redelivered
    );
    let c = ledger.counts();
    assert_eq!((c.completed, c.succeeded), (3, 3));
    assert_eq!(
        (c.pushed, c.pulled, c.redelivered, c.duplicates),
        (1, 2, 3, 0)
    );
    assert_eq!(ledger.histograms().latency.len(), 3);
}

#[test]
fn failure_codes_from_peers_are_bounded() {
    let plan = Arc::new(Plan::new(
        &Workload::parse("100", "w").unwrap(),
        Arrivals::Uniform,
        None,
    ));
    let mut ledger = Ledger::new("r", plan, 0.0);
    for seq in 0..100 {
        let code = format!("code_{seq}");
        ledger.on_enqueue(
            seq,
            EnqueueOutcome::Rejected { code },
            Duration::ZERO,
            Duration::ZERO,
        );
    }
    assert_eq!(ledger.failures().len(), 65);
    assert_eq!(ledger.failures().get("other"), Some(&36));
}

#[test]
fn ids_round_trip() {
    assert_eq!(
        parse_request_id(&request_id("20250101T000000Z-ab12", 7)),
        Some(("20250101T000000Z-ab12", 7))
    );
    assert_eq!(parse_request_id("no-number-x"), None);
    assert_eq!(parse_request_id("nodash"), None);
}

#[test]
fn direct_answers_are_their_own_records() {
    let plan = Arc::new(Plan::new(
        &Workload::parse("5", "w").unwrap(),
        Arrivals::Uniform,
        None,
    ));
    let mut ledger = Ledger::new("r", plan, 1_000.0);
    let at = Duration::from_millis(10);
    for seq in 0..5 {
        ledger.on_sent(seq, Duration::from_micros(100), at);
    }
    let ok = |label: &str| {
        Ok(DirectAnswer::Ok {
            label: Some(label.into()),
        })
    };
    ledger.on_direct(0, ok("espresso"), Duration::from_millis(40), at);
    ledger.on_direct(1, ok("espresso"), Duration::from_millis(60), at);
    let failed = DirectAnswer::Failed {
        code: "v2_400".into(),
    };
    ledger.on_direct(2, Ok(failed), at, at);
    let refused = DirectAnswer::Rejected {
        code: "v2_503".into(),
    };
    ledger.on_direct(3, Ok(refused), at, at);
    ledger.on_direct(4, Err("timeout"), at, at);
    let c = ledger.counts();
    assert_eq!(
        (c.sent, c.accepted, c.completed, c.succeeded, c.failed),
        (5, 3, 3, 2, 1)
    );
    assert_eq!(
        (c.rejected, c.send_errors, c.pushed, c.pulled),
        (1, 1, 0, 0)
    );
    assert_eq!(c.sent, c.succeeded + c.failed + c.rejected + c.send_errors);
    assert_eq!(ledger.outstanding(), 0, "nothing to wait for");
    assert!(ledger.missing_ids(10).is_empty());
    assert_eq!(ledger.labels().get("espresso"), Some(&2));
    assert_eq!(ledger.failures().get("v2_400"), Some(&1));
    assert_eq!(ledger.failures().get("v2_503"), Some(&1));
    assert_eq!(ledger.failures().get("timeout"), Some(&1));
    let latency = &ledger.histograms().latency;
    assert_eq!(latency.len(), 2);
    assert!(
        (39_900..=40_100).contains(&latency.min()),
        "{}",
        latency.min()
    );
}
