//! `cargo bench -p dispatcher`: enqueue throughput against a bare handler, and drain pacing.
//!
//! 1. Enqueue throughput with ~100 KB base64 bodies: the dispatcher's `/enqueue` and a bare axum
//!    handler that takes the same body, in alternating rounds of the same run, same client, same
//!    runtime; two more bare handlers show where the difference goes (one parses the JSON, one
//!    keeps every body as a queue must). Each target is compared with the bare handler of the
//!    same round, and the median of those ratios is what to read: the machine is shared and
//!    absolute figures move by a factor of two between runs. A calibration line prints what
//!    keeping a body costs by itself: copying it into fresh pages against reused memory.
//! 2. Drain pacing at 2/s and 500/s: items are queued first, then an upstream that answers at
//!    once is published; the times requests arrive there are compared with the ideal schedule
//!    `t0 + k / rate`. The upstream is a stub on purpose: this measures the drain, not a model
//!    (500 classifications per second are beyond a 2-core machine).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use clap::Parser;
use dispatcher::{Config, EndpointSource};
use harness_core::wire::{EnqueueRequest, InferResponse, Prediction, StageTimings};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// Requests per round: 2 000 × 100 KB stay within the default 256 MB queue bound.
const REQUESTS_PER_ROUND: usize = 2_000;
const ROUNDS: usize = 9;
const CLIENTS: usize = 16;
const BODY_SOURCE_BYTES: usize = 75_000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // `cargo bench -p dispatcher -- enqueue` (or `pacing`) runs one part only.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |part: &str| filter.is_empty() || filter.iter().any(|f| part.contains(f.as_str()));
    println!("load average before: {}", load_average());
    let result = runtime.block_on(async {
        if wanted("enqueue") {
            enqueue_throughput().await?;
        }
        if wanted("pacing") {
            pacing(2.0, Duration::from_secs(10), 64).await?;
            pacing(500.0, Duration::from_secs(4), 64).await?;
        }
        anyhow::Ok(())
    });
    println!("load average after: {}", load_average());
    result
}

/// `/proc/loadavg`'s first three fields: how shared the machine was during the run.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

// ------------------------------------------------------------------ enqueue throughput

/// What `/enqueue` requests are sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Dispatcher,
    /// Takes the body as `Bytes` and answers 202: the baseline of the goal.
    Bare,
    /// Also parses the body as the wire type (what any JSON handler pays).
    BareJson,
    /// Keeps every body, as a queue must (fresh memory, page faults).
    BareKeep,
}

const TARGETS: [Target; 4] = [
    Target::Dispatcher,
    Target::Bare,
    Target::BareJson,
    Target::BareKeep,
];

async fn enqueue_throughput() -> anyhow::Result<()> {
    let body = enqueue_body();
    println!(
        "enqueue throughput: body {} bytes, {CLIENTS} concurrent clients, {ROUNDS} rounds x {REQUESTS_PER_ROUND} requests per target",
        body.len()
    );
    let client = reqwest::Client::builder().no_proxy().build()?;
    // rates[round][target]
    let mut rates: Vec<[f64; TARGETS.len()]> = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        // Alternate the order so that drift in machine load hits every target alike.
        let mut order: Vec<usize> = (0..TARGETS.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut row = [0.0; TARGETS.len()];
        for i in order {
            row[i] = measure(TARGETS[i], &client, &body).await?;
        }
        rates.push(row);
    }
    let bare = index_of(Target::Bare);
    for (i, target) in TARGETS.iter().enumerate() {
        let mut ratios: Vec<f64> = rates.iter().map(|row| row[i] / row[bare]).collect();
        let mut absolute: Vec<f64> = rates.iter().map(|row| row[i]).collect();
        let (low, high) = (
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "  {:<12} {:>9.0} req/s  {:.2} x bare (rounds {low:.2} to {high:.2})",
            format!("{target:?}"),
            median(&mut absolute),
            median(&mut ratios),
        );
    }
    let ratio_to = |reference: Target| {
        let (ours, theirs) = (index_of(Target::Dispatcher), index_of(reference));
        let mut ratios: Vec<f64> = rates.iter().map(|row| row[ours] / row[theirs]).collect();
        median(&mut ratios)
    };
    println!(
        "  ratio dispatcher / bare = {:.2} (goal >= 0.8); dispatcher / bare that keeps the body = {:.2}",
        ratio_to(Target::Bare),
        ratio_to(Target::BareKeep),
    );
    let (fresh, reused) = keeping_cost(&body);
    println!(
        "  keeping a body: copy into fresh pages {:.1} us, into reused memory {:.1} us (median of {ROUNDS})",
        fresh * 1e6,
        reused * 1e6
    );
    Ok(())
}

fn index_of(target: Target) -> usize {
    TARGETS
        .iter()
        .position(|&t| t == target)
        .expect("every target is in TARGETS")
}

/// Seconds per body to copy it into memory the process has not touched yet (what every queued
/// item costs: page faults and zeroing in the kernel) and into one reused buffer (what a
/// handler that drops the body pays).
fn keeping_cost(body: &Bytes) -> (f64, f64) {
    let (mut fresh, mut reused) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let kept: Vec<Vec<u8>> = (0..REQUESTS_PER_ROUND).map(|_| body.to_vec()).collect();
        fresh.push(started.elapsed().as_secs_f64() / REQUESTS_PER_ROUND as f64);
        drop(std::hint::black_box(kept));
        let mut buffer = body.to_vec();
        let started = Instant::now();
        for _ in 0..REQUESTS_PER_ROUND {
            buffer.copy_from_slice(std::hint::black_box(body));
            std::hint::black_box(&buffer);
        }
        reused.push(started.elapsed().as_secs_f64() / REQUESTS_PER_ROUND as f64);
    }
    (median(&mut fresh), median(&mut reused))
}

async fn measure(target: Target, client: &reqwest::Client, body: &Bytes) -> anyhow::Result<f64> {
    if target == Target::Dispatcher {
        let (addr, stop, server) = start_dispatcher().await?;
        let rate = hammer(client, addr, body).await?;
        let _ = stop.send(());
        server.await??;
        return Ok(rate);
    }
    let kept: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let route = match target {
        Target::BareJson => post(bare_json),
        Target::BareKeep => post(move |body: Bytes| async move {
            kept.lock().expect("not poisoned").push(body);
            StatusCode::ACCEPTED
        }),
        _ => post(bare_bytes),
    };
    let router = Router::new()
        .route("/enqueue", route)
        .layer(DefaultBodyLimit::max(16 << 20));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let rate = hammer(client, addr, body).await;
    server.abort();
    let _ = server.await;
    rate
}

/// `{"image":"<~100 KB base64>"}` from pseudo-random bytes (incompressible, like a JPEG).
fn enqueue_body() -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let raw: Vec<u8> = (0..BODY_SOURCE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let request = EnqueueRequest::new(harness_core::image_payload::encode(&raw), None);
    Bytes::from(serde_json::to_vec(&request).expect("serialisable"))
}

async fn start_dispatcher() -> anyhow::Result<(
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    // No endpoint: nothing drains, so the queue holds the whole round; shutdown then records
    // every item as `shutdown` at once, and reporting is off.
    let config =
        Config::try_parse_from(["dispatcher", "--report-url", "", "--shutdown-timeout", "0s"])?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(dispatcher::run_with_endpoints(
        listener,
        config,
        EndpointSource::Static(vec![]),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok((addr, stop, server))
}

async fn bare_bytes(_body: Bytes) -> StatusCode {
    StatusCode::ACCEPTED
}

async fn bare_json(axum::Json(request): axum::Json<EnqueueRequest>) -> StatusCode {
    std::hint::black_box(request);
    StatusCode::ACCEPTED
}

/// Sends `REQUESTS_PER_ROUND` POSTs from `CLIENTS` concurrent loops; returns requests/s.
/// Every answer must be 202: a refused request would flatter the target.
async fn hammer(client: &reqwest::Client, addr: SocketAddr, body: &Bytes) -> anyhow::Result<f64> {
    let url = format!("http://{addr}/enqueue");
    let per_client = REQUESTS_PER_ROUND / CLIENTS;
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        loops.spawn(async move {
            for _ in 0..per_client {
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status() == StatusCode::ACCEPTED,
                    "answer {}",
                    response.status()
                );
                response.bytes().await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = loops.join_next().await {
        joined??;
    }
    Ok((per_client * CLIENTS) as f64 / started.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

// ------------------------------------------------------------------ drain pacing

#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Instant>>>);

async fn infer(State(arrivals): State<Arrivals>) -> axum::Json<InferResponse> {
    arrivals
        .0
        .lock()
        .expect("not poisoned")
        .push(Instant::now());
    axum::Json(InferResponse {
        predictions: vec![Prediction {
            label: "stub".into(),
            class_id: 0,
            score: 1.0,
        }],
        model: "stub".into(),
        timing_ms: StageTimings::default(),
    })
}

async fn pacing(rate: f64, span: Duration, max_in_flight: usize) -> anyhow::Result<()> {
    let items = (rate * span.as_secs_f64()).ceil() as usize + 1;
    let arrivals = Arrivals::default();
    let upstream = Router::new()
        .route("/infer", post(infer))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(arrivals.clone());
    let upstream_listener = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_url = format!("http://{}", upstream_listener.local_addr()?);
    let upstream_server =
        tokio::spawn(async move { axum::serve(upstream_listener, upstream).await });

    let config = Config::try_parse_from([
        "dispatcher".to_owned(),
        "--report-url".into(),
        String::new(),
        "--drain-rate".into(),
        rate.to_string(),
        "--max-in-flight".into(),
        max_in_flight.to_string(),
        "--queue-capacity".into(),
        (items + 10).to_string(),
    ])?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (endpoints_tx, endpoints_rx) = watch::channel(Vec::<String>::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(dispatcher::run_with_endpoints(
        listener,
        config,
        EndpointSource::Watch(endpoints_rx),
        async move {
            let _ = stopped.await;
        },
    ));

    // Queue everything first, then let the drain loose.
    let client = reqwest::Client::builder().no_proxy().build()?;
    let body = serde_json::to_vec(&EnqueueRequest::new("AAAAAAAA", None))?;
    for _ in 0..items {
        let response = client
            .post(format!("http://{addr}/enqueue"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        anyhow::ensure!(response.status() == StatusCode::ACCEPTED);
    }
    endpoints_tx.send_replace(vec![upstream_url]);
    let deadline = Instant::now() + span + Duration::from_secs(2);
    while arrivals.0.lock().expect("not poisoned").len() < items && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    server.await??;
    upstream_server.abort();

    let times = arrivals.0.lock().expect("not poisoned").clone();
    report_pacing(rate, &times);
    Ok(())
}

/// Compares arrivals with the ideal schedule. The first item leaves when the endpoint becomes
/// ready, which the drain treats as catch-up or re-anchoring depending on how late that is; the
/// steady state is measured from the second item on.
fn report_pacing(rate: f64, times: &[Instant]) {
    let Some((&t1, rest)) = times.get(1..).and_then(|t| t.split_first()) else {
        println!("drain pacing at {rate}/s: fewer than 2 items arrived");
        return;
    };
    let offsets: Vec<f64> = std::iter::once(0.0)
        .chain(
            rest.iter()
                .enumerate()
                .map(|(k, t)| (*t - t1).as_secs_f64() - (k + 1) as f64 / rate),
        )
        .collect();
    let span = (*rest.last().unwrap_or(&t1) - t1).as_secs_f64();
    let achieved = rest.len() as f64 / span;
    let mean_abs = offsets.iter().map(|o| o.abs()).sum::<f64>() / offsets.len() as f64;
    let max_abs = offsets.iter().fold(0.0f64, |m, o| m.max(o.abs()));
    let final_offset = offsets.last().copied().unwrap_or(0.0);
    println!(
        "drain pacing at {rate}/s: {} intervals over {span:.3} s, achieved {achieved:.3}/s ({:+.3}% rate error); \
         offset from the ideal schedule: mean |e| {:.3} ms, max |e| {:.3} ms, last item {:+.3} ms",
        rest.len(),
        (achieved - rate) / rate * 100.0,
        mean_abs * 1e3,
        max_abs * 1e3,
        final_offset * 1e3,
    );
}
