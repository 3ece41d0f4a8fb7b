//! `load-tester run` as a user runs it: the binary, its exit codes and its summary.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{FakeDispatcher, Fate};

async fn load_tester(args: Vec<String>) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_load-tester"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_prints_a_summary_and_exits_by_thresholds() {
    let dispatcher = FakeDispatcher::start(
        Arc::new(|_| Fate::Complete {
            latency_ms: 40.0,
            outcome: "ok".into(),
        }),
        Duration::ZERO,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let images = support::image_dir();
    let workload = dir.path().join("w.txt");
    std::fs::write(&workload, "# two seconds\n10, 10\n").unwrap();
    // The receiver port must be known before the dispatcher is told where to report.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    dispatcher.report_to(format!("http://127.0.0.1:{port}/storeLatency"));
    let args = |fail_on: &str| {
        vec![
            "run".to_owned(),
            format!("--workload={}", workload.display()),
            format!("--images={}", images.path().display()),
            format!("--dispatcher={}", dispatcher.url),
            format!("--out={}", dir.path().join("reports").display()),
            format!("--listen=127.0.0.1:{port}"),
            "--drain-timeout=3s".to_owned(),
            format!("--fail-on={fail_on}"),
        ]
    };
    let ok = load_tester(args("p99>500ms")).await;
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("succeeded") && stdout.contains("        20"),
        "{stdout}"
    );
    let report = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .unwrap();
    assert!(std::path::Path::new(report).is_file());

    let violated = load_tester(args("p50>=10ms")).await;
    assert_eq!(violated.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&violated.stderr);
    assert!(
        stderr.contains("threshold violated: p50>=10ms (observed 40.0ms)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_run_that_cannot_start_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let workload = dir.path().join("w.txt");
    std::fs::write(&workload, "5, 5;5").unwrap();
    let out = load_tester(vec![
        "run".into(),
        format!("--workload={}", workload.display()),
        format!("--images={}", dir.path().display()),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("w.txt:1:5: unexpected separator ';'"),
        "{stderr}"
    );
}
