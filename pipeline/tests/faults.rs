//! Faults injected into a running pipeline, and the accounting identity after each: every
//! request the load tester sent ends as succeeded, failed with a code, rejected at enqueue or a
//! send error, and `missing` is 0 once the system is back.
//!
//! Real parts throughout: inference replicas with the real model (the replica pool), the
//! dispatcher, the load tester's own run and receiver. Faults come from the pool
//! ([`ReplicaPool::kill`]), from a [`FaultProxy`] on the network path between two services, or
//! from the dispatcher's shutdown signal. The last test takes the autoscaler's telemetry away.

#![allow(clippy::unwrap_used)]

#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/replicas.rs"]
mod replicas;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autoscaler::{ControllerSettings, PolicySpec, Tuning};
use clap::Parser;
use dispatcher::EndpointSource;
use harness_core::wire::DispatcherStats;
use load_tester::delivery::RecordDelivery;
use load_tester::workload::Workload;
use load_tester::{ImagePool, RunOptions, Stats};
use pipeline::ReplicaPool;
use pipeline::autoscale::{LocalAutoscaler, TelemetryFrom};
use pipeline::config::DEMO_TUNING;
use proxy::FaultProxy;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A ready pool of `count` replicas that may be resized within `count..=max`.
async fn replicas_up_to(count: u32, max: u32) -> Arc<ReplicaPool> {
    let pool = ReplicaPool::start(replicas::pool_settings(count, max))
        .await
        .unwrap();
    pool.wait_ready(Duration::from_secs(60)).await.unwrap();
    pool
}

async fn replicas(count: u32) -> Arc<ReplicaPool> {
    replicas_up_to(count, count).await
}

/// A running dispatcher; `stop` is its SIGTERM.
struct Dispatcher {
    url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A dispatcher reporting to `report_url`; `extra` flags come on top of the defaults here
/// (each flag at most once: `--drain-rate` defaults to 20 unless given).
async fn dispatcher(report_url: &str, endpoints: EndpointSource, extra: &[&str]) -> Dispatcher {
    let mut args = vec!["dispatcher", "--report-url", report_url];
    if !extra.contains(&"--drain-rate") {
        args.extend(["--drain-rate", "20"]);
    }
    args.extend([
        "--max-attempts",
        "3",
        "--retry-backoff",
        "100ms",
        "--request-timeout",
        "5s",
        "--eject-duration",
        "1s",
        "--report-interval",
        "100ms",
        "--report-flush-timeout",
        "15s",
    ]);
    args.extend_from_slice(extra);
    let config = dispatcher::Config::try_parse_from(args).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn(dispatcher::run_with_endpoints(
        listener,
        config,
        endpoints,
        stop.clone().cancelled_owned(),
    ));
    Dispatcher { url, stop, task }
}

/// The load tester's run: `rps` requests per second for `seconds`, against `dispatcher`, with
/// its receiver on `receiver`. Returns its stats once every record is in or the drain timed out.
async fn load(receiver: TcpListener, dispatcher: &str, rps: u32, seconds: usize) -> Stats {
    load_with(receiver, dispatcher, rps, seconds, RecordDelivery::Auto).await
}

/// [`load`], with the records coming back as `delivery` says.
async fn load_with(
    receiver: TcpListener,
    dispatcher: &str,
    rps: u32,
    seconds: usize,
    delivery: RecordDelivery,
) -> Stats {
    let text = vec![rps.to_string(); seconds].join("\n");
    let workload = Workload::parse(&text, "faults").unwrap();
    let (images, _) = ImagePool::load(replicas::root().join("images"), None)
        .await
        .unwrap();
    let reports = tempfile::tempdir().unwrap();
    let mut options = RunOptions::new(
        workload,
        Arc::new(images),
        reqwest::Url::parse(dispatcher).unwrap(),
        reports.path(),
    );
    options.drain_timeout = Duration::from_secs(60);
    options.sample_dispatcher = false;
    options.record_delivery = delivery;
    let outcome =
        load_tester::run_load_test(options, receiver, |_| {}, std::future::pending::<()>())
            .await
            .unwrap();
    outcome.stats
}

/// Every request sent is accounted for, exactly once.
fn assert_accounted(stats: &Stats) {
    let s = stats;
    assert_eq!(s.missing, 0, "missing records: {s:#?}");
    assert_eq!(s.sent, s.planned, "every planned request was sent: {s:#?}");
    assert_eq!(s.sent, s.accepted + s.rejected + s.send_errors, "{s:#?}");
    assert_eq!(s.completed, s.accepted, "{s:#?}");
    assert_eq!(s.completed, s.succeeded + s.failed, "{s:#?}");
    // Codes cover dispatcher-reported failures and the client-side ones (503 codes, send
    // errors) alike.
    assert_eq!(
        s.failures_by_code.values().sum::<u64>(),
        s.failed + s.rejected + s.send_errors,
        "every failure has a code: {s:#?}"
    );
    assert_eq!((s.duplicates, s.unmatched), (0, 0), "{s:#?}");
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// True while the dispatcher has a request in flight to `endpoint`.
async fn busy(stats_url: &str, endpoint: &str) -> bool {
    let Ok(response) = reqwest::get(stats_url).await else {
        return false;
    };
    let stats: DispatcherStats = response.json().await.unwrap();
    stats
        .endpoints
        .iter()
        .any(|e| e.url.trim_end_matches('/') == endpoint && e.in_flight > 0)
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_run_is_retried_elsewhere_and_replaced() {
    let pool = replicas(2).await;
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let report_url = format!("http://{}/storeLatency", receiver.local_addr().unwrap());
    let d = dispatcher(&report_url, EndpointSource::Watch(pool.endpoints()), &[]).await;

    let victim = pool.endpoints().borrow()[0].clone();
    let killer = tokio::spawn({
        let (pool, stats_url) = (pool.clone(), format!("{}/stats", d.url));
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            // Kill while the victim is working, so that a request is cut mid-way.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !busy(&stats_url, &victim).await {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{victim} never had a request in flight"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            pool.kill(&victim).await.unwrap()
        }
    });
    let stats = load(receiver, &d.url, 8, 10).await;
    let replacement = killer.await.unwrap();

    assert_accounted(&stats);
    assert_eq!(stats.succeeded, stats.sent, "retried elsewhere: {stats:#?}");
    assert!(
        metric(&d.url, "dispatcher_retries_total").await >= 1.0,
        "the cut request was retried"
    );
    let endpoints = pool.endpoints().borrow().clone();
    assert_eq!(endpoints.len(), 2, "the pool replaced the killed replica");
    assert!(endpoints.contains(&replacement));
    pool.wait_ready(Duration::from_secs(60)).await.unwrap();
    d.stop.cancel();
    d.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_replicas_down_for_ten_seconds_loses_nothing() {
    let pool = replicas(1).await;
    let replica = pool.endpoints().borrow()[0].clone();
    let proxy = FaultProxy::start(addr(&replica)).await;
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let report_url = format!("http://{}/storeLatency", receiver.local_addr().unwrap());
    let d = dispatcher(
        &report_url,
        EndpointSource::Static(vec![proxy.url().to_owned()]),
        &[],
    )
    .await;

    let outage = tokio::spawn({
        let proxy = Arc::new(proxy);
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            proxy.cut();
            tokio::time::sleep(Duration::from_secs(10)).await;
            proxy.restore();
            proxy
        }
    });
    let stats = load(receiver, &d.url, 4, 16).await;
    let proxy = outage.await.unwrap();

    assert_accounted(&stats);
    assert!(proxy.refused() > 0, "the outage was felt upstream");
    // Items waited out the outage in the queue or failed with a code; nothing vanished.
    let waited = stats.queue_wait_ms.as_ref().map_or(0.0, |q| q.max);
    assert!(
        stats.failed > 0 || waited > 5_000.0,
        "the outage shows in the run: {stats:#?}"
    );
    assert!(stats.succeeded > 0);
    d.stop.cancel();
    d.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_down_for_ten_seconds_gets_every_record_late() {
    let pool = replicas(1).await;
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = Arc::new(FaultProxy::start(receiver.local_addr().unwrap()).await);
    let report_url = format!("{}/storeLatency", proxy.url());
    let d = dispatcher(&report_url, EndpointSource::Watch(pool.endpoints()), &[]).await;

    let outage = tokio::spawn({
        let proxy = proxy.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            proxy.cut();
            tokio::time::sleep(Duration::from_secs(10)).await;
            proxy.restore();
        }
    });
    // Push only: the path under test (a load tester that pulls would not need the receiver).
    let stats = load_with(receiver, &d.url, 4, 14, RecordDelivery::Push).await;
    outage.await.unwrap();

    assert_accounted(&stats);
    assert_eq!(stats.succeeded, stats.sent, "{stats:#?}");
    assert_eq!(stats.delivery.pushed, stats.completed, "{stats:#?}");
    assert!(
        metric(&d.url, "dispatcher_report_failures_total").await > 0.0,
        "the dispatcher saw the receiver down and retried"
    );
    d.stop.cancel();
    d.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_full_queue_reports_every_queued_item() {
    let pool = replicas(1).await;
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let report_url = format!("http://{}/storeLatency", receiver.local_addr().unwrap());
    // A slow drain and a small queue: the queue fills and overflows within seconds.
    let d = dispatcher(
        &report_url,
        EndpointSource::Watch(pool.endpoints()),
        &[
            "--drain-rate",
            "1",
            "--queue-capacity",
            "10",
            "--shutdown-timeout",
            "1s",
        ],
    )
    .await;

    let sigterm = tokio::spawn({
        let stop = d.stop.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            stop.cancel();
        }
    });
    let stats = load(receiver, &d.url, 5, 8).await;
    sigterm.await.unwrap();
    d.task.await.unwrap().unwrap();

    assert_accounted(&stats);
    assert!(stats.rejected > 0, "the full queue refused: {stats:#?}");
    assert!(
        stats.failures_by_code.get("shutdown").copied().unwrap_or(0) > 0,
        "items left at the deadline are reported as `shutdown`: {stats:#?}"
    );
    assert!(
        stats.send_errors > 0,
        "requests after the stop fail to send and are counted: {stats:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_without_telemetry_holds_then_recovers() {
    // Three replicas of a pool that may go down to one: an idle system would shrink.
    let pool = replicas_up_to(1, 3).await;
    pool.set_replicas(3).await.unwrap();
    pool.wait_ready(Duration::from_secs(60)).await.unwrap();
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let report_url = format!("http://{}/storeLatency", receiver.local_addr().unwrap());
    let d = dispatcher(&report_url, EndpointSource::Watch(pool.endpoints()), &[]).await;
    let metrics_proxy = FaultProxy::start(addr(&d.url)).await;

    let mut tuning = Tuning::from_yaml(DEMO_TUNING, "demo-autoscaler.yaml").unwrap();
    tuning.decision.min_replicas = 1;
    tuning.decision.max_replicas = 3;
    let settings = ControllerSettings {
        interval: Duration::from_millis(500),
        ..ControllerSettings::new(PolicySpec::Queue, tuning)
    };
    let source = TelemetryFrom::Scrape {
        dispatcher_metrics_url: format!("{}/metrics", metrics_proxy.url()),
    }
    .source(&pool, &settings)
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let autoscaler = LocalAutoscaler::start(source, pool.clone(), settings, listener).unwrap();

    // Good telemetry for 2 s (inside the start-up cool-down), then none for 15 s: longer
    // than the cool-down, so only the breaker stands between an idle system and a scale-down.
    tokio::time::sleep(Duration::from_secs(2)).await;
    metrics_proxy.cut();
    let mut breaker_seen = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pool.replicas(), 3, "no scale-down without telemetry");
        breaker_seen |= autoscaler.handle().status().is_some_and(|s| s.breaker_open);
    }
    assert!(breaker_seen, "the breaker opened");

    // Back: the breaker closes and the idle pool shrinks.
    metrics_proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while pool.replicas() == 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery: {:?}",
            autoscaler.handle().status()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!autoscaler.handle().status().unwrap().breaker_open);
    autoscaler.stop(Duration::from_secs(5)).await;
    d.stop.cancel();
    d.task.await.unwrap().unwrap();
}
