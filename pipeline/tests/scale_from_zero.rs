//! `pipeline demo --min-replicas 0`: the pool starts empty, the first requests queue at the
//! dispatcher, queued work activates the autoscaler, a replica cold-starts (loads the model)
//! and the queue drains. Nothing is lost, and the first requests' queue wait includes the
//! cold start.

// Helpers state their expectations with unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clap::Parser;
use pipeline::{Cli, Command, DemoSettings};

/// Three seconds, eight requests: enough to wake the pool, short in a debug build.
const WORKLOAD: &str = "# from zero\n3, 3, 2\n";
const IMAGES: [&str; 2] = ["chelsea.png", "rocket.jpg"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo's settings for `scaler` from zero replicas, with files under `dir`.
fn from_zero(dir: &Path, scaler: &str) -> Result<DemoSettings, anyhow::Error> {
    let workload = dir.join("workload.txt");
    std::fs::write(&workload, WORKLOAD).unwrap();
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for name in IMAGES {
        std::fs::copy(root().join("images").join(name), images.join(name)).unwrap();
    }
    let root = root();
    let path = |p: &Path| p.display().to_string();
    let argv = [
        ("--workload", path(&workload)),
        ("--images", path(&images)),
        ("--out", path(&dir.join("reports"))),
        (
            "--model",
            path(&root.join("inference/model/efficientnet-lite0.onnx")),
        ),
        (
            "--labels",
            path(&root.join("inference/model/imagenet-labels.txt")),
        ),
        ("--scaler", scaler.to_owned()),
        ("--min-replicas", "0".to_owned()),
        ("--max-replicas", "2".to_owned()),
        ("--interval", "500ms".to_owned()),
        ("--sample-interval", "500ms".to_owned()),
    ];
    let args = ["pipeline".to_owned(), "demo".to_owned()]
        .into_iter()
        .chain(
            argv.into_iter()
                .flat_map(|(flag, value)| [flag.to_owned(), value]),
        );
    let Command::Demo(args) = Cli::try_parse_from(args).unwrap().command;
    args.validate()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_requests_wait_a_cold_start_and_every_request_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let settings = from_zero(dir.path(), "predictive").unwrap();
    let planned = settings.workload.total();
    let outcome = pipeline::run(settings, std::future::pending())
        .await
        .unwrap();
    println!("{}", pipeline::summary::render(&outcome));

    let s = &outcome.load.stats;
    assert_eq!(s.sent, planned);
    assert_eq!(s.succeeded, planned, "{:?}", s.failures_by_code);
    assert_eq!((s.failed, s.rejected, s.missing), (0, 0, 0));
    // Started empty, activated by the queued requests.
    assert_eq!(outcome.replica_range.0, 0);
    let first = outcome.scale_events.first().unwrap();
    assert_eq!(first.from, 0, "{:?}", outcome.scale_events);
    assert!(first.to >= 1);
    // The first requests waited for the replica to load the model: the longest queue wait
    // covers the first replica's measured cold start.
    let cold_start = outcome.cold_starts.first().unwrap().as_secs_f64() * 1e3;
    let wait = s.queue_wait_ms.as_ref().unwrap();
    assert!(
        wait.max >= cold_start,
        "longest queue wait {:.0} ms < cold start {cold_start:.0} ms",
        wait.max
    );
}

#[test]
fn only_scalers_that_activate_from_zero_accept_min_replicas_0() {
    let dir = tempfile::tempdir().unwrap();
    assert!(from_zero(dir.path(), "queue").is_ok());
    let err = format!("{:#}", from_zero(dir.path(), "hpa").unwrap_err());
    assert!(
        err.contains("--min-replicas") && err.contains("does not scale to zero"),
        "{err}"
    );
}
