//! Generator benchmark: prints figures, asserts nothing (the machine is shared and noisy).
//!
//! 1. Open-loop accuracy: runs the real generator at increasing rates against a trivial local
//!    HTTP target and reports schedule lag; the highest rate whose p99 lag stays under 1 ms is
//!    the headline. If `oha` is on the PATH it is run at the same rates against the same target
//!    in the same process run (`oha -q <rate> --latency-correction`), for comparison.
//! 2. Memory after storing 1 M latency records (RSS delta), and the intake rate.
//! 3. Report generation time (stats + 4 plots + HTML) for those 1 M records.
//!
//! `cargo bench -p load-tester` (set `BENCH_RATES=500,1000` to choose rates).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use harness_core::sync::lock;
use harness_core::wire::LatencyRecord;
use load_tester::delivery::{Delivery, RecordDelivery};
use load_tester::ledger::{EnqueueOutcome, Ledger, request_id};
use load_tester::metrics::Metrics;
use load_tester::report::write_report;
use load_tester::schedule::{Arrivals, Plan};
use load_tester::store::{RunInfo, RunState, RunStore};
use load_tester::{ImagePool, PoolImage, RunOptions, Sample, SeriesKind, Workload, run_load_test};

const SECONDS_PER_RATE: usize = 3;
/// In-flight bound of both generators (our `--concurrency`, oha's `-c`).
const CONNECTIONS: usize = 200;

fn main() {
    let target = start_target();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load-tester generator benchmark; load average at start: {}",
        load.trim()
    );
    // Memory first, in a process that has not run anything yet, so the RSS delta is the store.
    runtime.block_on(memory_and_report());
    println!("\nopen loop against a trivial local target, {SECONDS_PER_RATE} s per rate:\n");
    runtime.block_on(open_loop(&target));
}

/// A trivial target on its own thread and runtime: 202 and a tiny JSON body.
fn start_target() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            let app = Router::new()
                .route(
                    "/enqueue",
                    post(|| async { (StatusCode::ACCEPTED, r#"{"id":"x","queueLength":0}"#) }),
                )
                .route("/healthz", get(|| async { "ok" }));
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn tiny_pool() -> Arc<ImagePool> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(4, 4, image::Rgb([200, 100, 50]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    Arc::new(
        ImagePool::from_images(vec![PoolImage {
            name: "tiny.png".into(),
            base64: harness_core::image_payload::encode(&png),
            width: 4,
            height: 4,
            bytes: png.len(),
        }])
        .unwrap(),
    )
}

fn rates() -> Vec<u32> {
    std::env::var("BENCH_RATES")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![250, 500, 1000, 2000, 4000, 8000])
}

async fn open_loop(target: &str) {
    let oha = Command::new("oha").arg("--version").output().is_ok();
    if !oha {
        println!("note: `oha` is not installed (cargo install oha); skipping the comparison\n");
    }
    println!(
        "{:>7} | {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} | {:>9} {:>11}",
        "rate",
        "sent/s",
        "lag p50",
        "lag p90",
        "lag p99",
        "lag max",
        "enq p99",
        "oha rps",
        "oha p99"
    );
    let reports = tempfile::tempdir().unwrap();
    let mut best = None;
    for rate in rates() {
        let workload =
            Workload::from_numbers(&[f64::from(rate); SECONDS_PER_RATE], "bench").unwrap();
        let mut options = RunOptions::new(
            workload,
            tiny_pool(),
            target.parse().unwrap(),
            reports.path(),
        );
        options.sample_dispatcher = false;
        // The same bound on requests in flight as oha's `-c` below.
        options.concurrency = CONNECTIONS;
        options.drain_timeout = Duration::ZERO;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outcome = run_load_test(options, listener, |_| {}, std::future::pending())
            .await
            .unwrap();
        let s = &outcome.stats;
        let lag = s.schedule_lag_ms.unwrap();
        let enqueue = s.enqueue_ms.unwrap();
        let achieved = s.sent as f64 / SECONDS_PER_RATE as f64;
        let (oha_rps, oha_p99) = if oha {
            run_oha(target, rate)
        } else {
            (None, None)
        };
        let show =
            |v: Option<f64>, unit: &str| v.map_or("–".to_owned(), |v| format!("{v:.2}{unit}"));
        println!(
            "{rate:>7} | {achieved:>9.0} {:>7.3}ms {:>7.3}ms {:>7.3}ms {:>7.3}ms {:>9.2}ms | {:>9} {:>11}",
            lag.p50,
            lag.p90,
            lag.p99,
            lag.max,
            enqueue.p99,
            show(oha_rps, ""),
            show(oha_p99, "ms"),
        );
        if lag.p99 < 1.0 && s.send_errors == 0 {
            best = Some(rate);
        }
    }
    match best {
        Some(rate) => println!("\nhighest rate with p99 schedule lag < 1 ms: {rate} req/s\n"),
        None => println!("\nno rate kept p99 schedule lag under 1 ms\n"),
    }
}

/// `oha -q rate` against the same target; achieved rate and p99 (latency-corrected), in ms.
fn run_oha(target: &str, rate: u32) -> (Option<f64>, Option<f64>) {
    let body = format!(
        r#"{{"image":"{}","id":"bench-1"}}"#,
        tiny_pool().images()[0].base64
    );
    let output = Command::new("oha")
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
            "-c",
            &CONNECTIONS.to_string(),
        ])
        .args([
            "-q",
            &rate.to_string(),
            "-z",
            &format!("{SECONDS_PER_RATE}s"),
        ])
        .args(["-m", "POST", "-T", "application/json", "-d", &body])
        .arg(format!("{target}/enqueue"))
        .output();
    let Ok(output) = output else {
        return (None, None);
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
        return (None, None);
    };
    (
        json["summary"]["requestsPerSec"].as_f64(),
        json["latencyPercentiles"]["p99"]
            .as_f64()
            .map(|s| s * 1000.0),
    )
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

async fn memory_and_report() {
    const RATE: f64 = 10_000.0;
    const SECONDS: usize = 100;
    const BATCH: usize = 200;
    let before = rss_bytes();
    let plan = Arc::new(Plan::new(
        &Workload::from_numbers(&[RATE; SECONDS], "bench").unwrap(),
        Arrivals::Uniform,
        None,
    ));
    let total = plan.total();
    let start_unix_ms = 1.7e12;
    let run_id = "bench";
    let info = RunInfo {
        run_id: run_id.into(),
        dispatcher_url: "http://127.0.0.1:8080/".into(),
        arrivals: load_tester::ArrivalProcess::Uniform,
        max_requests: None,
        concurrency: 10_000,
        images: 1,
        record_delivery: RecordDelivery::Push,
    };
    let state = Arc::new(RunState::new(
        info,
        Instant::now(),
        Ledger::new(run_id, plan.clone(), start_unix_ms),
    ));
    let store = RunStore::new();
    store.insert(state.clone());
    let metrics = Metrics::new();

    // The generator's side: sent and accepted.
    {
        let mut ledger = lock(&state.ledger);
        for slot in plan.slots() {
            ledger.on_sent(slot.seq, Duration::from_micros(slot.seq % 300), slot.offset);
            ledger.on_enqueue(
                slot.seq,
                EnqueueOutcome::Accepted,
                Duration::from_micros(800 + slot.seq % 900),
                slot.offset,
            );
        }
    }
    // The dispatcher's side: records in batches, as POST /storeLatency delivers them.
    let intake = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for slot in plan.slots() {
        let latency = 20.0 + (slot.seq * 7919 % 5000) as f64 / 10.0;
        let enqueued = start_unix_ms + slot.offset.as_secs_f64() * 1000.0;
        batch.push(LatencyRecord {
            id: request_id(run_id, slot.seq),
            enqueued_at_ms: enqueued,
            dispatched_at_ms: Some(enqueued + latency / 3.0),
            completed_at_ms: enqueued + latency,
            queue_wait_ms: latency / 3.0,
            inference_ms: Some(latency * 2.0 / 3.0),
            latency_ms: latency,
            attempts: 1,
            outcome: if slot.seq % 500 == 0 {
                "upstream_timeout".into()
            } else {
                "ok".into()
            },
            http_status: Some(200),
            label: Some("espresso".into()),
            endpoint: Some("http://10.0.0.1:8000".into()),
        });
        if batch.len() == BATCH {
            store.store(&batch, Delivery::Push, &metrics);
            batch.clear();
        }
    }
    store.store(&batch, Delivery::Push, &metrics);
    let intake = intake.elapsed();
    let after = rss_bytes();
    let stored = lock(&state.ledger).counts().completed;
    println!(
        "stored {stored} of {total} records in {:.2} s ({:.0} records/s, in batches of {BATCH})",
        intake.as_secs_f64(),
        stored as f64 / intake.as_secs_f64()
    );
    println!(
        "RSS after 1 M records: {:.1} MB (delta {:.1} MB over the empty process); \
         a Vec<LatencyRecord> of them alone would take at least {:.0} MB",
        after as f64 / 1e6,
        after.saturating_sub(before) as f64 / 1e6,
        (std::mem::size_of::<LatencyRecord>() as f64 + 80.0) * total as f64 / 1e6,
    );

    // A sampled series, as the dispatcher's /stats would give, so all four plots are drawn.
    {
        let mut timeline = lock(&state.timeline);
        for second in 0..SECONDS as u64 {
            let at = Duration::from_secs(second);
            timeline.push(
                at,
                Sample::new("queue length", SeriesKind::Queue, (second % 17) as f64),
            );
            timeline.push(
                at,
                Sample::new(
                    "ready replicas",
                    SeriesKind::Replicas,
                    (1 + second / 20) as f64,
                ),
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (stats, files) = write_report(&state, None, dir.path()).await.unwrap();
    println!(
        "report for {} records ({} plots + stats.json + report.html): {:.2} s",
        stats.completed,
        files.plots.len(),
        started.elapsed().as_secs_f64()
    );
}
