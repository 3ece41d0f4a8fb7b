//! Soak: the demo (`pipeline demo`, every service in one process) at a steady load, its
//! resident memory and open file descriptors sampled as it runs. After a warm-up (the first
//! quarter of the samples: the model loads, pools and buffers fill), the least-squares trend
//! over the rest must not grow by more than 5 % over the measured span.
//!
//! This is the short variant CI runs (2 minutes). The long soak, `scripts/soak.sh` (an hour by
//! default), runs the real binaries as separate processes instead, so that each service's memory
//! and descriptors are measured apart. Settings: `SOAK_SECONDS` (120), `SOAK_SAMPLE_SECONDS` (5),
//! `SOAK_RATE` requests per second (4).

#![allow(clippy::unwrap_used)]

#[path = "support/procs.rs"]
mod procs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use procs::Process;

/// Largest growth of the trend over the measured span, as a fraction of the mean.
const MAX_GROWTH: f64 = 0.05;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Growth of the least-squares line through `(t, y)` from the first to the last `t`, as a
/// fraction of the mean of `y`.
fn trend_growth(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mean_t, mean_y) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let covariance: f64 = points
        .iter()
        .map(|(t, y)| (t - mean_t) * (y - mean_y))
        .sum();
    let variance: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    let slope = covariance / variance;
    let span = points.last().unwrap().0 - points[0].0;
    slope * span / mean_y
}

#[test]
fn the_trend_of_a_flat_a_growing_and_a_noisy_series() {
    let flat: Vec<(f64, f64)> = (0..10).map(|t| (t as f64, 100.0)).collect();
    assert_eq!(trend_growth(&flat), 0.0);
    let growing: Vec<(f64, f64)> = (0..=10).map(|t| (t as f64, 100.0 + t as f64)).collect();
    assert!((trend_growth(&growing) - 10.0 / 105.0).abs() < 1e-9);
    let noisy: Vec<(f64, f64)> = (0..100)
        .map(|t| (t as f64, if t % 2 == 0 { 90.0 } else { 110.0 }))
        .collect();
    assert!(trend_growth(&noisy).abs() < 0.01);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_shows_no_growth_in_memory_or_descriptors() {
    let root = root();
    let seconds = setting("SOAK_SECONDS", 120);
    let every = Duration::from_secs(setting("SOAK_SAMPLE_SECONDS", 5));
    let rate = setting("SOAK_RATE", 4);
    let work = tempfile::tempdir().unwrap();
    let workload = work.path().join("steady.txt");
    std::fs::write(&workload, format!("{rate}\n").repeat(seconds as usize)).unwrap();

    let s = |v: &str| v.to_owned();
    let path = |p: PathBuf| p.display().to_string();
    let demo = Process::start(
        "pipeline demo",
        Path::new(env!("CARGO_BIN_EXE_pipeline")),
        &[
            s("demo"),
            s("--workload"),
            path(workload),
            s("--images"),
            path(root.join("images")),
            s("--model"),
            path(root.join("inference/model/efficientnet-lite0.onnx")),
            s("--labels"),
            path(root.join("inference/model/imagenet-labels.txt")),
            s("--out"),
            path(work.path().join("reports")),
            s("--max-replicas"),
            s("2"),
        ],
    );
    println!("soak: {seconds} s at {rate} req/s, sampled every {every:?}");
    println!("{:>7}  {:>9}  {:>4}", "t (s)", "RSS MiB", "fds");
    let started = Instant::now();
    let mut samples: Vec<(f64, f64, f64)> = Vec::new();
    let mut demo = demo;
    let status = loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            break status;
        }
        if let Some(usage) = demo.sample() {
            let t = started.elapsed().as_secs_f64();
            println!("{t:>7.0}  {:>9.1}  {:>4}", usage.rss_mib, usage.fds);
            samples.push((t, usage.rss_mib, usage.fds as f64));
        }
        tokio::time::sleep(every).await;
    };
    assert!(status.success(), "the demo exited with {status}");

    let measured = &samples[samples.len() / 4..];
    assert!(measured.len() >= 8, "too few samples: {}", samples.len());
    let rss = trend_growth(&measured.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>());
    let fds = trend_growth(&measured.iter().map(|s| (s.0, s.2)).collect::<Vec<_>>());
    let mean_fds = measured.iter().map(|s| s.2).sum::<f64>() / measured.len() as f64;
    println!(
        "trend over the last {:.0} s: RSS {:+.2} %, fds {:+.2} %",
        measured.last().unwrap().0 - measured[0].0,
        rss * 100.0,
        fds * 100.0
    );
    assert!(rss <= MAX_GROWTH, "RSS grows {:.1} %", rss * 100.0);
    // Descriptors are few and move in whole connections: up to 2 of them is not a trend.
    assert!(
        fds <= MAX_GROWTH.max(2.0 / mean_fds),
        "open descriptors grow {:.1} %",
        fds * 100.0
    );

    // Nothing lost in two minutes of steady load either.
    let (_, stats) = procs::only_report(&work.path().join("reports"));
    assert_eq!(stats["missing"], 0, "{stats:#}");
    assert_eq!(stats["succeeded"], stats["sent"], "{stats:#}");
}
