//! A finished run's journal rebuilds its report: `load-tester report --run-dir` replays the
//! journal through the same ledger and statistics and gets the run's own numbers.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use load_tester::config::Collect;
use load_tester::{ImagePool, ReportArgs, RunOptions, Stats, Workload, run_load_test};
use serde_json::Value;
use support::{FakeDispatcher, Fate};
use tokio::net::TcpListener;

/// Equal values, fractions to 1e-12 relative: a mean summed from µs (the journal) and from ns
/// (the run) can differ in its last bit. Counts are integers and must be equal.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_rebuilt_from_its_journal_has_the_same_numbers() {
    // Every kind of fate: successes with two latencies, a failure, a rejection, a lost record.
    let dispatcher = FakeDispatcher::start(
        Arc::new(|seq| match seq % 7 {
            0 => Fate::Reject,
            1 => Fate::Complete {
                latency_ms: 40.0,
                outcome: "upstream_timeout".into(),
            },
            2 => Fate::Lose,
            n => Fate::Complete {
                latency_ms: 5.0 * n as f64,
                outcome: "ok".into(),
            },
        }),
        Duration::ZERO,
    )
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    dispatcher.report_to(format!(
        "http://{}/storeLatency",
        listener.local_addr().unwrap()
    ));
    let reports = tempfile::tempdir().unwrap();
    let images = support::image_dir();
    let (pool, _) = ImagePool::load(images.path().to_owned(), None)
        .await
        .unwrap();
    let workload = Workload::from_numbers(&[20.0, 15.0], "test").unwrap();
    let mut options = RunOptions::new(
        workload,
        Arc::new(pool),
        dispatcher.url.parse().unwrap(),
        reports.path(),
    );
    options.drain_timeout = Duration::from_millis(500);
    options.sample_interval = Duration::from_millis(250);
    let live = run_load_test(options, listener, |_| {}, std::future::pending())
        .await
        .unwrap();
    let dir = reports.path().join(&live.run_id);
    let journal = live.stats.journal.clone().unwrap();
    assert!(journal.ended && !journal.rebuilt && journal.dropped_lines == 0);
    assert!(journal.bytes_per_request > 100.0, "{journal:?}");

    std::fs::remove_file(dir.join("stats.json")).unwrap();
    let args = ReportArgs {
        run_dir: dir.clone(),
        collect: Collect::Off,
        dispatcher_url: None,
        collect_timeout: Duration::from_secs(1),
    };
    let printed = load_tester::report_command::rebuild_report(&args)
        .await
        .unwrap();
    assert!(printed.contains(&live.run_id), "{printed}");
    let rebuilt: Stats =
        serde_json::from_slice(&std::fs::read(dir.join("stats.json")).unwrap()).unwrap();
    // Everything but the journal's own description is the run's (times to the µs).
    let mut expected = live.stats.clone();
    expected.journal = rebuilt.journal.clone();
    let (a, b) = (
        serde_json::to_value(&rebuilt).unwrap(),
        serde_json::to_value(&expected).unwrap(),
    );
    for (key, value) in a.as_object().unwrap() {
        if ["durationSeconds", "throughputPerSecond"].contains(&key.as_str()) {
            // The journal keeps times in µs, the live run had ns.
            let (x, y) = (value.as_f64().unwrap(), b[key].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                "{key}: {x} vs {y}"
            );
        } else {
            assert!(same(value, &b[key]), "{key}: {value} vs {}", b[key]);
        }
    }
    let rebuilt_journal = rebuilt.journal.unwrap();
    assert!(rebuilt_journal.rebuilt && rebuilt_journal.ended);
    assert_eq!(rebuilt_journal.bytes, journal.bytes);
    assert!(live.stats.missing > 0 && live.stats.rejected > 0 && live.stats.failed > 0);
    assert!(dir.join("report.html").is_file() && dir.join("timeline.csv").is_file());
}
