//! End-to-end runs of the library API against an in-process target that records exactly what
//! arrived and reports real latency records back, as the dispatcher does.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use load_tester::{Arrivals, ImagePool, RunOptions, RunOutcome, Workload, run_load_test};
use support::{FakeDispatcher, Fate};
use tokio::net::TcpListener;

async fn options(dispatcher: &FakeDispatcher, rates: &[f64], reports: &Path) -> RunOptions {
    let images = support::image_dir();
    let (pool, _) = ImagePool::load(images.path().to_owned(), None)
        .await
        .unwrap();
    let workload = Workload::from_numbers(rates, "test").unwrap();
    let mut options = RunOptions::new(
        workload,
        Arc::new(pool),
        dispatcher.url.parse().unwrap(),
        reports,
    );
    options.drain_timeout = Duration::from_secs(5);
    options.sample_interval = Duration::from_millis(250);
    options
}

async fn receiver(dispatcher: &FakeDispatcher) -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    dispatcher.report_to(format!("http://{addr}/storeLatency"));
    listener
}

async fn run(options: RunOptions, listener: TcpListener) -> RunOutcome {
    run_load_test(options, listener, |_| {}, std::future::pending())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_second_gets_its_rate_evenly_spread() {
    let dispatcher = FakeDispatcher::start(
        Arc::new(|_| Fate::Complete {
            latency_ms: 5.0,
            outcome: "ok".into(),
        }),
        Duration::ZERO,
    )
    .await;
    let reports = tempfile::tempdir().unwrap();
    let rates = [20.0, 50.0, 10.0];
    let options = options(&dispatcher, &rates, reports.path()).await;
    let outcome = run(options, receiver(&dispatcher).await).await;

    let arrivals = dispatcher.arrivals();
    assert_eq!(arrivals.len(), 80, "every request arrives exactly once");
    let start = outcome.stats.started_at_ms;
    let mut per_second = [0u32; 4];
    let mut errors_ms = Vec::new();
    for a in &arrivals {
        let offset_ms = a.at_unix_ms - start;
        per_second[((offset_ms / 1000.0).max(0.0) as usize).min(3)] += 1;
        // Intended offset of this seq under uniform arrivals.
        let (second, k) = match a.seq {
            s @ 0..20 => (0.0, s as f64 / 20.0),
            s @ 20..70 => (1.0, (s - 20) as f64 / 50.0),
            s => (2.0, (s - 70) as f64 / 10.0),
        };
        errors_ms.push(offset_ms - (second + k) * 1000.0);
    }
    for (second, want) in [20, 50, 10].into_iter().enumerate() {
        assert!(
            per_second[second].abs_diff(want) <= 1,
            "second {second}: {} arrivals, want {want}±1 ({per_second:?})",
            per_second[second]
        );
    }
    // Evenly spread: within each second, the typical gap between arrivals is 1/N.
    let mut sorted = arrivals.clone();
    sorted.sort_by(|a, b| a.at_unix_ms.total_cmp(&b.at_unix_ms));
    for (second, n) in [(0u64, 20.0), (1, 50.0), (2, 10.0)] {
        let mut gaps: Vec<f64> = sorted
            .windows(2)
            .filter(|w| ((w[0].at_unix_ms - start) / 1000.0) as u64 == second)
            .filter(|w| ((w[1].at_unix_ms - start) / 1000.0) as u64 == second)
            .map(|w| w[1].at_unix_ms - w[0].at_unix_ms)
            .collect();
        gaps.sort_by(f64::total_cmp);
        let median = gaps[gaps.len() / 2];
        let want = 1000.0 / n;
        assert!(
            (median - want).abs() < want * 0.25,
            "second {second}: median gap {median:.2} ms, want {want} ms"
        );
    }
    // Each request arrives close to its own intended time. Arrival is stamped by the target
    // after the HTTP exchange starts, on a shared 2-core machine running other tests: the
    // median must be tight, the tail gets slack, but nothing arrives early.
    errors_ms.sort_by(f64::total_cmp);
    let median = errors_ms[errors_ms.len() / 2];
    let p90 = errors_ms[errors_ms.len() * 9 / 10];
    assert!(
        errors_ms[0] > -2.0,
        "arrived before its intended time: {errors_ms:?}"
    );
    assert!(
        median < 5.0,
        "median arrival error {median:.2} ms: {errors_ms:?}"
    );
    assert!(p90 < 25.0, "p90 arrival error {p90:.2} ms: {errors_ms:?}");
    assert_eq!(outcome.stats.succeeded, 80);
    assert_eq!(outcome.stats.missing, 0);
    assert!(!outcome.interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisson_arrivals_send_the_planned_requests() {
    let dispatcher = FakeDispatcher::start(Arc::new(|_| Fate::Lose), Duration::ZERO).await;
    let reports = tempfile::tempdir().unwrap();
    let mut options = options(&dispatcher, &[100.0, 100.0], reports.path()).await;
    options.arrivals = Arrivals::Poisson { seed: 42 };
    options.drain_timeout = Duration::from_millis(200);
    let outcome = run(options, receiver(&dispatcher).await).await;
    let arrivals = dispatcher.arrivals();
    assert_eq!(arrivals.len() as u64, outcome.stats.planned);
    assert!(arrivals.len().abs_diff(200) < 60, "{}", arrivals.len());
    // Lost records are missing, not failed.
    assert_eq!(outcome.stats.missing, outcome.stats.sent);
    assert_eq!(outcome.stats.completed, 0);
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_numbers_match_an_independent_computation() {
    // Known fates: every 13th rejected, every 11th lost, every 7th fails upstream, the rest
    // succeed with a latency spread over two orders of magnitude.
    let fate = |seq: u64| match seq {
        s if s % 13 == 5 => Fate::Reject,
        s if s % 11 == 3 => Fate::Lose,
        s if s % 7 == 1 => Fate::Complete {
            latency_ms: 30_000.0,
            outcome: "upstream_timeout".into(),
        },
        s => Fate::Complete {
            latency_ms: 3.0 + (s * 37 % 400) as f64 * 1.7,
            outcome: "ok".into(),
        },
    };
    let dispatcher = FakeDispatcher::start(Arc::new(fate), Duration::ZERO).await;
    dispatcher.duplicate(2);
    let reports = tempfile::tempdir().unwrap();
    let mut options = options(&dispatcher, &[60.0, 60.0, 60.0], reports.path()).await;
    options.max_requests = Some(150);
    options.total_requests = Some(160); // the caller expected 10 more than the cap sends
    options.drain_timeout = Duration::from_secs(2);
    let listener = receiver(&dispatcher).await;
    let receiver_url = format!("http://{}/storeLatency", listener.local_addr().unwrap());
    // A record from nowhere, while the run is going.
    let stray = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let record = serde_json::json!({
            "id": "someone-else-1", "enqueuedAtMs": 1.0, "dispatchedAtMs": null,
            "completedAtMs": 2.0, "queueWaitMs": 1.0, "inferenceMs": null, "latencyMs": 1.0,
            "attempts": 0, "outcome": "shutdown", "httpStatus": null, "label": null,
            "endpoint": null
        });
        reqwest::Client::new()
            .post(receiver_url)
            .json(&record)
            .send()
            .await
            .unwrap()
    });
    let outcome = run(options, listener).await;
    let stray = stray.await.unwrap();
    assert_eq!(stray.status(), 200);
    assert_eq!(
        stray.json::<serde_json::Value>().await.unwrap()["unmatched"],
        1
    );

    let mut ok = Vec::new();
    let (mut rejected, mut lost, mut failed) = (0, 0, 0);
    for seq in 0..150 {
        match fate(seq) {
            Fate::Reject => rejected += 1,
            Fate::Lose => lost += 1,
            Fate::Complete { outcome, .. } if outcome != "ok" => failed += 1,
            Fate::Complete { latency_ms, .. } => ok.push(latency_ms),
        }
    }
    ok.sort_by(f64::total_cmp);
    let s = &outcome.stats;
    assert_eq!((s.planned, s.sent, s.total_requests), (150, 150, 160));
    assert_eq!(s.rejected, rejected);
    assert_eq!(s.accepted, 150 - rejected);
    assert_eq!(s.failed, failed);
    assert_eq!(s.succeeded, ok.len() as u64);
    assert_eq!(s.completed, failed + ok.len() as u64);
    assert_eq!(s.missing, lost + 10, "lost records plus the 10 never sent");
    assert_eq!(s.duplicates, 1);
    assert_eq!(s.send_errors, 0);
    let want: BTreeMap<String, u64> = [
        ("queue_full".to_owned(), rejected),
        ("upstream_timeout".to_owned(), failed),
    ]
    .into();
    assert_eq!(s.failures_by_code, want);
    assert!(s.missing_ids_sample.contains(&format!("{}-3", s.run_id)));

    let latency = s.latency_ms.unwrap();
    assert_eq!(latency.count, ok.len() as u64);
    let close = |got: f64, want: f64, what: &str| {
        // 3 significant digits: within 0.1 % (plus the 1 µs unit).
        assert!(
            (got - want).abs() <= want * 0.001 + 0.001,
            "{what}: got {got}, want {want}"
        );
    };
    close(latency.min, ok[0], "min");
    close(latency.max, *ok.last().unwrap(), "max");
    close(
        latency.mean,
        ok.iter().sum::<f64>() / ok.len() as f64,
        "mean",
    );
    for (got, q) in [
        (latency.p50, 0.5),
        (latency.p90, 0.9),
        (latency.p95, 0.95),
        (latency.p99, 0.99),
        (latency.p999, 0.999),
    ] {
        close(got, percentile(&ok, q), &format!("p{q}"));
    }
    let queue = s.queue_wait_ms.unwrap();
    close(queue.p50, percentile(&ok, 0.5) * 0.25, "queue wait p50");
    let inference = s.inference_ms.unwrap();
    close(inference.max, ok.last().unwrap() * 0.75, "inference max");
    assert_eq!(s.enqueue_ms.unwrap().count, 150);
    assert_eq!(s.schedule_lag_ms.unwrap().count, 150);

    // stats.json on disk is the same document.
    let on_disk = std::fs::read(&outcome.report.stats_json).unwrap();
    assert_eq!(on_disk, serde_json::to_vec_pretty(s).unwrap());

    // timeline.csv: one row per second whose columns add up to the totals.
    let csv = std::fs::read_to_string(&outcome.report.timeline_csv).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("second,offered,sent,"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 10), "{csv}");
    let column = |i: usize| -> u64 { rows.iter().map(|r| r[i].parse::<u64>().unwrap()).sum() };
    // The workload as written; `maxImages` may cap what is planned from it.
    assert!(column(1) >= s.planned, "offered");
    assert_eq!(column(2), s.sent, "sent");
    assert_eq!(column(5) + column(6), s.completed, "succeeded + failed");
    let p99s: Vec<f64> = rows.iter().filter_map(|r| r[9].parse().ok()).collect();
    assert!(
        !p99s.is_empty() && p99s.iter().all(|&p| p <= latency.max * 1.01),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_concurrency_cap_delays_sends_and_records_the_lag() {
    // Answers take 300 ms; two in flight at most; 20 requests in one second.
    let dispatcher = FakeDispatcher::start(
        Arc::new(|_| Fate::Complete {
            latency_ms: 1.0,
            outcome: "ok".into(),
        }),
        Duration::from_millis(300),
    )
    .await;
    let reports = tempfile::tempdir().unwrap();
    let mut options = options(&dispatcher, &[20.0], reports.path()).await;
    options.concurrency = 2;
    let outcome = run(options, receiver(&dispatcher).await).await;
    let s = &outcome.stats;
    assert_eq!(dispatcher.arrivals().len(), 20, "late, but never skipped");
    assert_eq!(s.sent, 20);
    assert!(s.concurrency_cap_hits >= 10, "{}", s.concurrency_cap_hits);
    // 10 rounds of 300 ms for 2 at a time: the last sends are ~2 s late.
    let lag = s.schedule_lag_ms.unwrap();
    assert!(lag.max > 1500.0, "max lag {}", lag.max);
    // Enqueue time counts from the intended send, so it includes the lag.
    assert!(s.enqueue_ms.unwrap().max >= lag.max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_sending_and_still_writes_the_report() {
    let dispatcher = FakeDispatcher::start(
        Arc::new(|_| Fate::Complete {
            latency_ms: 2.0,
            outcome: "ok".into(),
        }),
        Duration::ZERO,
    )
    .await;
    let reports = tempfile::tempdir().unwrap();
    let options = options(&dispatcher, &[10.0; 60], reports.path()).await;
    let started = std::time::Instant::now();
    let outcome = run_load_test(
        options,
        receiver(&dispatcher).await,
        |_| {},
        tokio::time::sleep(Duration::from_millis(1500)),
    )
    .await
    .unwrap();
    assert!(outcome.interrupted);
    assert!(started.elapsed() < Duration::from_secs(10));
    let s = &outcome.stats;
    assert!((10..=25).contains(&s.sent), "sent {}", s.sent);
    assert_eq!(s.phase, load_tester::Phase::Interrupted);
    assert_eq!(s.completed, s.sent, "records of what was sent still arrive");
    assert!(outcome.report.html.exists());
}

#[tokio::test]
async fn an_unreachable_dispatcher_fails_before_sending() {
    // A port nobody listens on: bind, then drop.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let images = support::image_dir();
    let (pool, _) = ImagePool::load(images.path().to_owned(), None)
        .await
        .unwrap();
    let options = RunOptions::new(
        Workload::parse("5", "w").unwrap(),
        Arc::new(pool),
        format!("http://{addr}").parse().unwrap(),
        images.path(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = run_load_test(options, listener, |_| {}, std::future::pending())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "dispatcher_unreachable");
}
