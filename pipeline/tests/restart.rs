//! A dispatcher that crashes mid-run loses what its in-memory queue held; the load tester
//! notices the new instance id and reports those requests as `missing` with the reason
//! `dispatcher restarted`, without waiting for them until the drain deadline.
//!
//! The first dispatcher runs on a runtime of its own, so that its crash can be abrupt: shutting
//! that runtime down drops every task at once (queue, drain, reporter, open connections), with
//! no graceful drain. A second dispatcher then binds the same port. The upstream is a small fake
//! model server (the model itself is not what this checks), and the first dispatcher's slow
//! drain rate keeps items in its queue.
//!
//! The run's journal then rebuilds the same report (`load-tester report --run-dir`): the
//! instance ids are in it, so the rebuild sees the restart too.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::routing::{get, post};
use clap::Parser;
use harness_core::wire::{InferResponse, Prediction, StageTimings};
use load_tester::ledger::parse_request_id;
use load_tester::{ImagePool, RunOptions, Workload};
use tokio::net::TcpListener;

/// Requests per second, for this many seconds.
const RATE: u64 = 20;
const SECONDS: usize = 3;
/// When the first dispatcher dies, from the start of the test.
const CRASH_AFTER: Duration = Duration::from_millis(1500);
/// Far longer than the run may take: it must not wait for the lost requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A model server that is always ready and answers every image with the same class.
async fn fake_model_server() -> String {
    let answer = InferResponse {
        predictions: vec![Prediction {
            label: "espresso".into(),
            class_id: 967,
            score: 0.9,
        }],
        model: "fake".into(),
        timing_ms: StageTimings::default(),
    };
    let app = Router::new()
        .route("/readyz", get(|| async { "ready" }))
        .route("/infer", post(move || async move { Json(answer) }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn dispatcher_config(model: &str, report_url: &str, drain_rate: &str) -> dispatcher::Config {
    dispatcher::Config::try_parse_from([
        "dispatcher",
        "--inference-url",
        model,
        "--report-url",
        report_url,
        "--report-interval",
        "100ms",
        "--drain-rate",
        drain_rate,
    ])
    .unwrap()
}

/// Binds `addr`, retrying while the dead instance's socket is being closed.
async fn bind_again(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err) if Instant::now() < deadline => {
                tracing::debug!(%err, "port not free yet");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => panic!("cannot bind {addr} again: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_held_by_a_crashed_dispatcher_are_missing_with_their_reason() {
    let test_start = Instant::now();
    let model = fake_model_server().await;
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let report_url = format!("http://{}/storeLatency", receiver.local_addr().unwrap());

    // The first dispatcher, on its own runtime: 2 items a second leaves most in its queue.
    let first_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = {
        let _runtime = first_runtime.enter();
        TcpListener::from_std(std_listener).unwrap()
    };
    let config = dispatcher_config(&model, &report_url, "2");
    first_runtime.spawn(dispatcher::run(listener, config, std::future::pending()));

    // The crash, then a fast second instance on the same port.
    let crash = tokio::spawn({
        let (model, report_url) = (model.clone(), report_url.clone());
        async move {
            tokio::time::sleep(CRASH_AFTER.saturating_sub(test_start.elapsed())).await;
            let crashed_at = harness_core::wire::now_unix_millis();
            first_runtime.shutdown_background();
            let listener = bind_again(addr).await;
            let config = dispatcher_config(&model, &report_url, "200");
            tokio::spawn(dispatcher::run(listener, config, std::future::pending()));
            crashed_at
        }
    });

    let reports = tempfile::tempdir().unwrap();
    let images = reports.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let repo_images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images");
    std::fs::copy(repo_images.join("coffee.png"), images.join("coffee.png")).unwrap();
    let (pool, _) = ImagePool::load(images, None).await.unwrap();
    let workload = vec![RATE.to_string(); SECONDS].join("\n");
    let mut options = RunOptions::new(
        Workload::parse(&workload, "restart").unwrap(),
        Arc::new(pool),
        reqwest::Url::parse(&format!("http://{addr}")).unwrap(),
        reports.path(),
    );
    options.drain_timeout = DRAIN_TIMEOUT;
    let run_start = Instant::now();
    let outcome =
        load_tester::run_load_test(options, receiver, |_| {}, std::future::pending::<()>())
            .await
            .unwrap();
    let took = run_start.elapsed();
    let crashed_at = crash.await.unwrap();
    let s = &outcome.stats;

    // The run finished without waiting for the lost requests.
    assert!(!outcome.interrupted);
    assert!(took < DRAIN_TIMEOUT / 2, "waited {took:?}: {s:#?}");
    assert_eq!(s.dispatcher_restarts, 1, "{s:#?}");

    // Nothing uncounted: every request sent is a success, a rejection, a send error (sent while
    // no dispatcher listened) or missing, and every missing one for the restart.
    assert_eq!(s.sent, s.planned, "{s:#?}");
    assert_eq!(s.failed + s.rejected, 0, "{s:#?}");
    assert_eq!(
        s.total_requests,
        s.succeeded + s.failed + s.rejected + s.send_errors + s.missing,
        "{s:#?}"
    );
    assert_eq!(s.missing_by_reason.values().sum::<u64>(), s.missing);
    assert_eq!(s.missing_by_reason["no record"], 0, "{s:#?}");
    assert_eq!(s.missing_by_reason["load tester stopped"], 0, "{s:#?}");
    let lost = s.missing_by_reason["dispatcher restarted"];
    assert!(
        lost > 0,
        "the first dispatcher's queue held requests: {s:#?}"
    );

    // The lost requests are ones sent before the crash; every later one succeeded.
    let crash_offset_s = (crashed_at - s.started_at_ms) / 1000.0;
    let sent_before_crash = ((crash_offset_s * RATE as f64).ceil() as u64).min(s.planned);
    assert!(lost <= sent_before_crash, "{lost} > {sent_before_crash}");
    for id in &s.missing_ids_sample {
        let (_, seq) = parse_request_id(id).unwrap();
        assert!(seq < sent_before_crash, "{id} was sent after the crash");
    }
    // The summary and report.html give the reason too.
    let summary = load_tester::run_command::summary(&outcome);
    let line = summary
        .lines()
        .find(|l| l.contains("missing: dispatcher restarted"))
        .unwrap_or_else(|| panic!("no reason line in\n{summary}"));
    assert!(line.ends_with(&format!(" {lost}")), "{line}");
    let html = std::fs::read_to_string(&outcome.report.html).unwrap();
    assert!(
        html.contains(&format!(
            "missing: dispatcher restarted</td><td>{lost}</td>"
        )),
        "no reason row in report.html"
    );
    let sent_after = s.planned - sent_before_crash;
    assert!(
        s.succeeded + s.send_errors >= sent_after,
        "requests sent after the restart succeed: {s:#?}"
    );

    // Rebuilt from the journal alone, the report has the restart and what it lost.
    let dir = reports.path().join(&outcome.run_id);
    std::fs::remove_file(dir.join("stats.json")).unwrap();
    let args = load_tester::ReportArgs {
        run_dir: dir.clone(),
        collect: load_tester::config::Collect::Off,
        dispatcher_url: None,
        collect_timeout: Duration::from_secs(1),
    };
    load_tester::report_command::rebuild_report(&args)
        .await
        .unwrap();
    let rebuilt: load_tester::Stats =
        serde_json::from_slice(&std::fs::read(dir.join("stats.json")).unwrap()).unwrap();
    assert!(rebuilt.journal.as_ref().unwrap().rebuilt);
    assert_eq!(rebuilt.dispatcher_restarts, s.dispatcher_restarts);
    assert_eq!(rebuilt.missing_by_reason, s.missing_by_reason);
    assert_eq!(
        (
            rebuilt.sent,
            rebuilt.succeeded,
            rebuilt.send_errors,
            rebuilt.missing
        ),
        (s.sent, s.succeeded, s.send_errors, s.missing)
    );
    assert_eq!(rebuilt.missing_ids_sample, s.missing_ids_sample);
}
