//! The demo path end to end, in-process, on a short workload: real replicas, dispatcher,
//! load tester and autoscaler. Every request must be accounted for, the autoscaler must have
//! resized the pool, and the report must be on disk.

// Helpers state their expectations with unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use clap::Parser;
use pipeline::{Cli, Command};

/// Ten seconds: a short warm-up, a burst above what one single-worker replica does even on a
/// fast machine (one image takes 30-40 ms in release, more in a debug build), a tail.
const WORKLOAD: &str = "# short demo workload\n2, 2, 30, 30, 30, 30, 30, 5, 2, 2\n";
const IMAGES: [&str; 3] = ["grace_hopper.jpg", "chelsea.png", "rocket.jpg"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_demo_accounts_for_every_request_scales_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let workload = dir.path().join("workload.txt");
    std::fs::write(&workload, WORKLOAD).unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for name in IMAGES {
        std::fs::copy(root().join("images").join(name), images.join(name)).unwrap();
    }
    let out = dir.path().join("reports");
    let root = root();
    let arg = |p: &Path| p.display().to_string();
    let Command::Demo(args) = Cli::try_parse_from([
        "pipeline".to_owned(),
        "demo".to_owned(),
        "--workload".to_owned(),
        arg(&workload),
        "--images".to_owned(),
        arg(&images),
        "--out".to_owned(),
        arg(&out),
        "--model".to_owned(),
        arg(&root.join("inference/model/efficientnet-lite0.onnx")),
        "--labels".to_owned(),
        arg(&root.join("inference/model/imagenet-labels.txt")),
        "--min-replicas".to_owned(),
        "1".to_owned(),
        "--max-replicas".to_owned(),
        "3".to_owned(),
        "--interval".to_owned(),
        "1s".to_owned(),
        "--sample-interval".to_owned(),
        "500ms".to_owned(),
    ])
    .unwrap()
    .command;
    let settings = args.validate().unwrap();
    let planned = settings.workload.total();

    let outcome = pipeline::run(settings, std::future::pending())
        .await
        .unwrap();
    println!("{}", pipeline::summary::render(&outcome));

    let s = &outcome.load.stats;
    assert!(!outcome.interrupted());
    assert_eq!(s.sent, planned, "every planned request was sent");
    assert_eq!(
        s.sent,
        s.succeeded + s.failed + s.rejected + s.send_errors,
        "sent = succeeded + failed + rejected (+ send errors)"
    );
    assert_eq!(s.missing, 0, "missing: {:?}", s.missing_ids_sample);
    assert!(s.succeeded > 0);
    // Push and pull both run in the demo; each record counts once, whichever came first.
    let d = &s.delivery;
    assert_eq!(d.pushed + d.pulled, s.completed, "{d:?}");
    assert_eq!(s.duplicates, 0, "{d:?}");

    let (lo, hi) = outcome.replica_range;
    assert_eq!(lo, 1);
    assert!(hi > 1, "the pool never grew: {:?}", outcome.scale_events);
    assert!(
        outcome.scale_events.iter().any(|e| e.to > e.from),
        "no scale-up event: {:?}",
        outcome.scale_events
    );

    let report = &outcome.load.report;
    let mut files = vec![report.stats_json.clone(), report.html.clone()];
    files.extend(report.plots.iter().cloned());
    assert!(
        report
            .plots
            .iter()
            .any(|p| p.ends_with("queue_replicas.png")),
        "no queue/replicas plot: {:?}",
        report.plots
    );
    for file in &files {
        assert!(file.starts_with(&out), "{} outside --out", file.display());
        let len = std::fs::metadata(file).unwrap().len();
        assert!(len > 0, "{} is empty", file.display());
    }
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report.stats_json).unwrap()).unwrap();
    assert_eq!(stats["sent"], planned);
}
