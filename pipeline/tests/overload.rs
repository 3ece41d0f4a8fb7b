//! Overload: ten times what the inference service can classify, for 30 s, against the real
//! binaries as separate processes (one inference replica, the dispatcher, the load tester's
//! `run`). Checked afterwards:
//! - every request is accounted for (`missing` = 0) and the overflow was refused with 503
//!   `queue_full`, counted by the load tester;
//! - the dispatcher's queue never exceeded its limit;
//! - no service's resident memory grew by more than a fixed allowance during the burst;
//! - latency came back to its pre-burst level once the backlog had drained.
//!
//! `OVERLOAD_SECONDS` (default 30) changes the burst's length; figures are printed with
//! `--nocapture`.

#![allow(clippy::unwrap_used)]

#[path = "support/procs.rs"]
mod procs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness_core::wire::DispatcherStats;
use procs::{Process, Usage, binary, free_port, wait_healthy};

/// The dispatcher's queue bound in this test: the backlog drains in seconds, not minutes.
const QUEUE_CAPACITY: usize = 40;
/// Growth of resident memory a service may show between before and during the burst.
const RSS_ALLOWANCE_MIB: f64 = 128.0;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Requests per second one inference worker sustains, measured with back-to-back requests.
async fn capacity(inference: &str) -> f64 {
    let photo = std::fs::read(root().join("images/coffee.png")).unwrap();
    let body = serde_json::json!({ "image": harness_core::image_payload::encode(&photo) });
    let client = reqwest::Client::new();
    for _ in 0..3 {
        client
            .post(format!("{inference}/infer"))
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    let n = 15;
    let started = Instant::now();
    for _ in 0..n {
        let r = client
            .post(format!("{inference}/infer"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_capacity_is_refused_bounded_and_recovered_from() {
    let root = root();
    let burst_seconds: usize = std::env::var("OVERLOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let (inference_port, dispatcher_port, receiver_port) = (free_port(), free_port(), free_port());
    let inference_url = format!("http://127.0.0.1:{inference_port}");
    let dispatcher_url = format!("http://127.0.0.1:{dispatcher_port}");
    let s = |v: &str| v.to_owned();

    let inference = Process::start(
        "inference",
        &binary("inference"),
        &[
            s("--listen"),
            format!("127.0.0.1:{inference_port}"),
            s("--workers"),
            s("1"),
            s("--model"),
            root.join("inference/model/efficientnet-lite0.onnx")
                .display()
                .to_string(),
            s("--labels"),
            root.join("inference/model/imagenet-labels.txt")
                .display()
                .to_string(),
        ],
    );
    wait_healthy(&format!("{inference_url}/readyz"), Duration::from_secs(120)).await;
    let capacity = capacity(&inference_url).await;

    let dispatcher = Process::start(
        "dispatcher",
        &binary("dispatcher"),
        &[
            s("--listen"),
            format!("127.0.0.1:{dispatcher_port}"),
            s("--inference-url"),
            inference_url.clone(),
            s("--drain-rate"),
            s("1000"),
            s("--max-in-flight"),
            s("2"),
            s("--queue-capacity"),
            QUEUE_CAPACITY.to_string(),
            s("--report-url"),
            format!("http://127.0.0.1:{receiver_port}/storeLatency"),
        ],
    );
    wait_healthy(&format!("{dispatcher_url}/readyz"), Duration::from_secs(30)).await;

    // Calm, ten times capacity, calm again (long enough for the backlog to drain).
    let calm = (capacity / 2.0).round().max(1.0) as u32;
    let burst = (capacity * 10.0).round() as u32;
    let mut rates = vec![calm; 8];
    rates.extend(vec![burst; burst_seconds]);
    rates.extend(vec![calm; 20]);
    let work = tempfile::tempdir().unwrap();
    let workload = work.path().join("workload.txt");
    std::fs::write(
        &workload,
        rates.iter().map(|r| format!("{r}\n")).collect::<String>(),
    )
    .unwrap();
    println!(
        "capacity {capacity:.1} req/s; workload: 8 s at {calm}, {burst_seconds} s at {burst}, \
         20 s at {calm}"
    );

    let baseline: Vec<Usage> = [&inference, &dispatcher]
        .iter()
        .map(|p| p.sample().unwrap())
        .collect();
    let load_tester = Process::start(
        "load-tester",
        &binary("load-tester"),
        &[
            s("run"),
            s("--listen"),
            format!("127.0.0.1:{receiver_port}"),
            s("--workload"),
            workload.display().to_string(),
            s("--images"),
            root.join("images").display().to_string(),
            s("--dispatcher-url"),
            dispatcher_url.clone(),
            s("--reports-dir"),
            work.path().join("reports").display().to_string(),
            s("--drain-timeout"),
            s("60s"),
        ],
    );

    // Sample every service and the dispatcher's queue until the load tester exits.
    let client = reqwest::Client::new();
    let mut peak_queue = 0;
    let mut peaks: Vec<Usage> = baseline.clone();
    let mut load_tester_peak: Option<Usage> = None;
    let mut load_tester = load_tester;
    let status = loop {
        if let Ok(Some(status)) = load_tester.child.try_wait() {
            break status;
        }
        for (peak, process) in peaks.iter_mut().zip([&inference, &dispatcher]) {
            let now = process
                .sample()
                .unwrap_or_else(|| panic!("{} exited under overload", process.name));
            *peak = peak.max(now);
        }
        if let Some(now) = load_tester.sample() {
            load_tester_peak = Some(load_tester_peak.map_or(now, |peak| peak.max(now)));
        }
        if let Ok(r) = client.get(format!("{dispatcher_url}/stats")).send().await
            && let Ok(stats) = r.json::<DispatcherStats>().await
        {
            peak_queue = peak_queue.max(stats.queue_length);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(status.success(), "load-tester run exited with {status}");

    for ((before, peak), name) in baseline.iter().zip(&peaks).zip(["inference", "dispatcher"]) {
        println!(
            "{name}: RSS {:.1} MiB before, {:.1} MiB peak; fds {} before, {} peak",
            before.rss_mib, peak.rss_mib, before.fds, peak.fds
        );
        assert!(
            peak.rss_mib - before.rss_mib < RSS_ALLOWANCE_MIB,
            "{name} grew {:.1} MiB under overload",
            peak.rss_mib - before.rss_mib
        );
    }
    let lt = load_tester_peak.unwrap();
    println!(
        "load-tester: RSS peak {:.1} MiB, fds peak {}",
        lt.rss_mib, lt.fds
    );
    println!("dispatcher queue: peak {peak_queue} of {QUEUE_CAPACITY}");
    assert!(peak_queue <= QUEUE_CAPACITY);

    // The report: the identity, the refusals, and latency before and after the burst.
    let (report, stats) = procs::only_report(&work.path().join("reports"));
    let n = |key: &str| stats[key].as_u64().unwrap();
    println!(
        "sent {} = succeeded {} + failed {} + rejected {} + send errors {}; missing {}",
        n("sent"),
        n("succeeded"),
        n("failed"),
        n("rejected"),
        n("sendErrors"),
        n("missing")
    );
    assert_eq!(n("missing"), 0, "{stats:#}");
    assert_eq!(
        n("sent"),
        n("succeeded") + n("failed") + n("rejected") + n("sendErrors"),
        "{stats:#}"
    );
    assert!(
        stats["failuresByCode"]["queue_full"].as_u64().unwrap_or(0) > 0,
        "the overflow was refused with queue_full: {stats:#}"
    );

    let timeline = std::fs::read_to_string(report.join("timeline.csv")).unwrap();
    let p99: Vec<Option<f64>> = timeline
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(9).and_then(|v| v.parse().ok()))
        .collect();
    let before: Vec<f64> = p99[2..8].iter().flatten().copied().collect();
    let after_start = 8 + burst_seconds + 12;
    let after: Vec<f64> = p99[after_start..8 + burst_seconds + 20]
        .iter()
        .flatten()
        .copied()
        .collect();
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (before, after) = (median(&before), median(&after));
    println!("per-second p99: {before:.1} ms before the burst, {after:.1} ms at its end + 12 s");
    assert!(
        after <= before * 2.0 + 50.0,
        "latency recovered after the burst: {before:.1} ms before, {after:.1} ms after"
    );

    dispatcher.terminate(Duration::from_secs(35)).await;
    inference.terminate(Duration::from_secs(35)).await;
}
