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

/// A ledger of `n` requests, all sent, and the ones in `accepted` accepted.
fn accepted_ledger(n: u64, accepted: std::ops::Range<u64>) -> Ledger {
    let workload = Workload::parse(&n.to_string(), "w").unwrap();
    let plan = Arc::new(Plan::new(&workload, Arrivals::Uniform, None));
    let mut ledger = Ledger::new("r", plan, 1_000.0);
    let at = Duration::from_millis(10);
    for seq in 0..n {
        ledger.on_sent(seq, Duration::ZERO, at);
    }
    for seq in accepted {
        ledger.on_enqueue(seq, EnqueueOutcome::Accepted, at, at);
    }
    ledger
}

#[test]
fn missing_reasons_have_stable_names() {
    let names: Vec<&str> = MissingReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        ["no record", "dispatcher restarted", "load tester stopped"]
    );
    for reason in MissingReason::ALL {
        assert_eq!(MissingReason::from_name(reason.as_str()), Some(reason));
        assert_eq!(reason.to_string(), reason.as_str());
    }
    assert_eq!(MissingReason::from_name("No record"), None);
}

#[test]
fn marked_requests_are_not_waited_for_and_add_up_to_missing() {
    // 0..6 accepted; 6 rejected; 7 sent with no answer yet.
    let mut ledger = accepted_ledger(8, 0..6);
    let at = Duration::from_millis(20);
    let code = "queue_full".to_owned();
    ledger.on_enqueue(6, EnqueueOutcome::Rejected { code }, at, at);
    ledger.on_record(0, &record("r-0", 5.0, "ok"), Delivery::Push);
    assert_eq!(ledger.outstanding(), 5);

    // 1..6 have no record: lost. A recorded or rejected request cannot be marked.
    let lost = ledger.mark_outstanding_missing(MissingReason::DispatcherRestarted);
    assert_eq!(lost, 5);
    assert_eq!(ledger.outstanding(), 0, "lost requests are not waited for");
    assert!(!ledger.mark_missing(0, MissingReason::LoadTesterStopped));
    assert!(!ledger.mark_missing(6, MissingReason::LoadTesterStopped));
    assert!(!ledger.mark_missing(1, MissingReason::LoadTesterStopped));
    assert_eq!(
        ledger.missing_reason(1),
        Some(MissingReason::DispatcherRestarted)
    );
    // 7 was in flight when the load tester stopped; a second pass marks nothing new.
    assert!(ledger.mark_missing(7, MissingReason::LoadTesterStopped));
    assert_eq!(
        ledger.mark_outstanding_missing(MissingReason::NoRecord),
        0,
        "already marked"
    );

    let c = ledger.counts();
    let known = c.completed + c.rejected + c.send_errors;
    let missing = c.sent - known;
    assert_eq!(missing, 6);
    let by_reason = ledger.missing_by_reason(missing);
    assert_eq!(by_reason["dispatcher restarted"], 5);
    assert_eq!(by_reason["load tester stopped"], 1);
    assert_eq!(by_reason["no record"], 0);
    assert_eq!(by_reason.values().sum::<u64>(), missing);
    // The identity: every request sent is one of these.
    assert_eq!(
        c.sent,
        c.succeeded + c.failed + c.rejected + c.send_errors + missing
    );
}

#[test]
fn a_late_record_for_a_lost_request_counts_as_its_outcome_once() {
    let mut ledger = accepted_ledger(3, 0..3);
    assert_eq!(
        ledger.mark_outstanding_missing(MissingReason::DispatcherRestarted),
        3
    );
    // Request 1's record was pushed before the crash and arrives now; then again by pull.
    assert_eq!(
        ledger.on_record(1, &record("r-1", 5.0, "ok"), Delivery::Push),
        RecordOutcome::Stored
    );
    assert_eq!(
        ledger.on_record(1, &record("r-1", 5.0, "ok"), Delivery::Pull),
        RecordOutcome::Redelivered
    );
    assert_eq!(ledger.missing_reason(1), None);
    assert_eq!(ledger.marked_missing(MissingReason::DispatcherRestarted), 2);
    assert_eq!(ledger.outstanding(), 0);
    let c = ledger.counts();
    assert_eq!((c.completed, c.succeeded), (1, 1));
    let missing = c.sent - c.completed;
    let by_reason = ledger.missing_by_reason(missing);
    assert_eq!(by_reason["dispatcher restarted"], 2);
    assert_eq!(by_reason.values().sum::<u64>(), 2);
}

#[test]
fn unmarked_missing_requests_are_no_record() {
    // 0..2 accepted, 2 never answered, and the caller expected 5 (one never sent).
    let ledger = accepted_ledger(4, 0..2);
    assert_eq!(ledger.outstanding(), 2);
    let by_reason = ledger.missing_by_reason(5);
    assert_eq!(by_reason["no record"], 5);
    assert_eq!(by_reason["dispatcher restarted"], 0);
    assert_eq!(by_reason.len(), MissingReason::ALL.len());
}

#[test]
fn a_request_marked_before_its_answer_is_not_outstanding() {
    // Sent, marked (the load tester stopped), then its 202 is processed after all.
    let mut ledger = accepted_ledger(1, 0..0);
    assert!(ledger.mark_missing(0, MissingReason::LoadTesterStopped));
    let at = Duration::from_millis(30);
    ledger.on_enqueue(0, EnqueueOutcome::Accepted, at, at);
    assert_eq!(ledger.outstanding(), 0);
    ledger.on_record(0, &record("r-0", 5.0, "failed"), Delivery::Push);
    assert_eq!(ledger.outstanding(), 0);
    assert_eq!(ledger.marked_missing(MissingReason::LoadTesterStopped), 0);
    assert_eq!(ledger.counts().failed, 1);
}

#[test]
fn a_rebuild_counts_a_recorded_request_as_sent_and_marks_the_rest_load_tester_stopped() {
    let plan = Arc::new(Plan::new(
        &Workload::parse("5", "w").unwrap(),
        Arrivals::Uniform,
        None,
    ));
    let mut ledger = Ledger::new("r", plan, 1_000.0);
    let at = Duration::from_millis(10);
    // 0: accepted; 1: sent, never answered; 2: rejected; 3: no journal line at all, but its
    // record arrives (the send's line was lost with the load tester); 4: never sent.
    for seq in 0..3 {
        ledger.on_sent(seq, Duration::ZERO, at);
    }
    ledger.on_enqueue(0, EnqueueOutcome::Accepted, at, at);
    let rejected = EnqueueOutcome::Rejected {
        code: "queue_full".into(),
    };
    ledger.on_enqueue(2, rejected, at, at);
    ledger.on_record(3, &record("r-3", 50.0, "ok"), Delivery::Pull);
    let c = ledger.counts();
    assert_eq!((c.sent, c.completed, c.rejected), (4, 1, 1));
    assert_eq!(ledger.seconds()[0].sent, 4);
    // 0 and 1 have no fate: both marked, not 2 (rejected), 3 (recorded) or 4 (never sent).
    assert_eq!(
        ledger.mark_unknown_missing(MissingReason::LoadTesterStopped),
        2
    );
    assert_eq!(
        ledger.missing_reason(1),
        Some(MissingReason::LoadTesterStopped)
    );
    assert_eq!(ledger.missing_reason(4), None);
    let by_reason = ledger.missing_by_reason(2);
    assert_eq!(by_reason["load tester stopped"], 2);
    assert_eq!(by_reason["no record"], 0);
}

#[test]
fn a_new_dispatcher_instance_loses_what_the_earlier_one_held() {
    // 0..4 accepted by instance a (0 and 1 without saying: taken as the current one).
    let mut ledger = accepted_ledger(8, 0..0);
    let at = Duration::from_millis(10);
    let accept = |ledger: &mut Ledger, seq: u64, id: Option<&str>| {
        ledger.on_enqueue(seq, EnqueueOutcome::Accepted, at, at);
        ledger.accepted_by(seq, id)
    };
    assert_eq!(
        ledger.observe_instance("a"),
        None,
        "the first id is no restart"
    );
    for seq in 0..4 {
        let id = (seq >= 2).then_some("a");
        assert_eq!(accept(&mut ledger, seq, id), None);
    }
    ledger.on_record(0, &record("r-0", 5.0, "ok"), Delivery::Push);
    assert_eq!(ledger.observe_instance("a"), None);

    // Request 4's answer comes from instance b: 1, 2 and 3 are lost, 4 is not.
    let restart = accept(&mut ledger, 4, Some("b")).expect("a restart");
    assert_eq!(
        restart,
        Restart {
            previous: "a".into(),
            current: "b".into(),
            lost: 3
        }
    );
    assert_eq!(ledger.missing_reason(4), None);
    assert_eq!(ledger.outstanding(), 1, "only request 4 is waited for");
    // A late answer from a (sent before the crash) is lost at once; a stale /stats changes nothing.
    assert_eq!(accept(&mut ledger, 5, Some("a")), None);
    assert_eq!(
        ledger.missing_reason(5),
        Some(MissingReason::DispatcherRestarted)
    );
    assert_eq!(ledger.observe_instance("a"), None);
    assert_eq!(accept(&mut ledger, 6, Some("b")), None);
    assert_eq!(ledger.dispatcher_restarts(), 1);
    assert_eq!(ledger.marked_missing(MissingReason::DispatcherRestarted), 4);

    // Request 2's record was pushed before the crash: its real outcome counts.
    ledger.on_record(2, &record("r-2", 5.0, "ok"), Delivery::Push);
    assert_eq!(ledger.marked_missing(MissingReason::DispatcherRestarted), 3);
    // A second restart, seen by a /stats poll: 4 and 6 (b's) are lost too.
    let second = ledger.observe_instance("c").expect("a second restart");
    assert_eq!((second.previous.as_str(), second.lost), ("b", 2));
    assert_eq!(ledger.dispatcher_restarts(), 2);
    assert_eq!(ledger.outstanding(), 0);
    let c = ledger.counts();
    let missing = c.sent - c.completed - c.rejected - c.send_errors;
    let by_reason = ledger.missing_by_reason(missing);
    // 7 was sent and never answered: no record.
    assert_eq!(by_reason["dispatcher restarted"], 5);
    assert_eq!(by_reason["no record"], 1);
    assert_eq!(
        c.sent,
        c.succeeded + c.failed + c.rejected + c.send_errors + missing
    );
}

#[test]
fn without_instance_ids_nothing_is_marked() {
    let mut ledger = accepted_ledger(3, 0..3);
    for seq in 0..3 {
        assert_eq!(ledger.accepted_by(seq, None), None);
    }
    assert_eq!(ledger.observe_instance(""), None);
    assert_eq!(ledger.dispatcher_restarts(), 0);
    assert_eq!(ledger.outstanding(), 3);
}
