//! The demo from start to report: start the replica pool, the dispatcher and the autoscaler,
//! run the workload through the load tester, wait for the queue to drain and every record to
//! arrive, write the report, and stop everything in order.
//!
//! Start-up order follows the data: replicas (ready before any load), the load tester's
//! receiver (so the dispatcher's reports have somewhere to go), the dispatcher, the
//! autoscaler, and only then the load. Shutdown runs the other way: the autoscaler stops
//! deciding, the dispatcher drains what is left, the replicas finish their in-flight requests.
//!
//! Ctrl-C stops the sending at once; the dispatcher then drains for at most 1.5 s and reports
//! what it had to abandon as `shutdown`, within the load tester's grace period for late
//! records, so the report of an interrupted run still accounts for every request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use dispatcher::EndpointSource;
use load_tester::{FnSampler, ImagePool, Progress, RunOptions, RunOutcome, Sample, SeriesKind};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::autoscale::{LocalAutoscaler, Telemetry};
use crate::config::DemoSettings;
use crate::pool::{ReplicaPool, ScaleEvent};

/// Time the first replicas get to load the model before the demo gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Time each component gets to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// A progress line every this many seconds of the run.
const PROGRESS_EVERY_SECONDS: u64 = 5;
/// Series name of the autoscaler's decision in the queue/replicas plot.
pub const DESIRED_REPLICAS: &str = "desired replicas";

/// What a demo run produced.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// The load tester's stats and report files.
    pub load: RunOutcome,
    /// Every change of the pool's size during the run (shutdown excluded).
    pub scale_events: Vec<ScaleEvent>,
    /// The fewest and most replicas the pool had.
    pub replica_range: (u32, u32),
    /// Wall time from start-up to the end of the shutdown.
    pub elapsed: Duration,
}

impl DemoOutcome {
    /// True when Ctrl-C cut the run short.
    pub fn interrupted(&self) -> bool {
        self.load.interrupted
    }
}

/// Where the running services listen, printed at start.
struct Addresses {
    dispatcher: String,
    autoscaler: String,
}

/// Runs the demo until the workload is done and drained, or `shutdown` completes.
pub async fn run(
    settings: DemoSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<DemoOutcome> {
    let started = Instant::now();
    let interrupted = CancellationToken::new();
    let _interrupt_watch = AbortOnDropHandle::new(tokio::spawn({
        let interrupted = interrupted.clone();
        async move {
            shutdown.await;
            interrupted.cancel();
        }
    }));

    let (images, skipped) = ImagePool::load(settings.images.clone(), None).await?;
    for skip in &skipped {
        tracing::warn!(path = %skip.path.display(), reason = %skip.reason, "image skipped");
    }
    let pool = Arc::new(ReplicaPool::start(settings.pool.clone()).await?);
    tokio::select! {
        ready = pool.wait_ready(READY_TIMEOUT) => ready.context("starting the replicas")?,
        () = interrupted.cancelled() => anyhow::bail!("interrupted before the load started"),
    }

    let receiver = TcpListener::bind(("127.0.0.1", 0)).await?;
    let mut dispatcher_config = settings.dispatcher.clone();
    dispatcher_config.report_url = format!("http://{}/storeLatency", receiver.local_addr()?);
    let dispatcher_listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let dispatcher_url = format!("http://{}", dispatcher_listener.local_addr()?);
    // A child token: Ctrl-C stops the dispatcher too, and so does the end of the run.
    let dispatcher_stop = interrupted.child_token();
    let mut dispatcher = AbortOnDropHandle::new(tokio::spawn(dispatcher::run_with_endpoints(
        dispatcher_listener,
        dispatcher_config,
        EndpointSource::Watch(pool.endpoints()),
        dispatcher_stop.clone().cancelled_owned(),
    )));

    let telemetry = Telemetry::Scrape {
        dispatcher_metrics_url: format!("{dispatcher_url}/metrics"),
    };
    let source = telemetry.source(&pool, &settings.controller)?;
    let autoscaler = LocalAutoscaler::start(
        source,
        pool.clone(),
        settings.controller.clone(),
        TcpListener::bind(("127.0.0.1", 0)).await?,
    )?;
    announce(
        &settings,
        &pool,
        &Addresses {
            dispatcher: dispatcher_url.clone(),
            autoscaler: autoscaler.url().to_owned(),
        },
    );

    let options = load_options(&settings, images, &dispatcher_url, &autoscaler)?;
    let load = load_tester::run_load_test(
        options,
        receiver,
        progress_printer(pool.clone()),
        interrupted.clone().cancelled_owned(),
    )
    .await;

    // Shutdown, the reverse of start-up.
    let scale_events = pool.events();
    autoscaler.stop(STOP_TIMEOUT).await;
    dispatcher_stop.cancel();
    match tokio::time::timeout(STOP_TIMEOUT, &mut dispatcher).await {
        Ok(Ok(Err(err))) => tracing::warn!(err = format!("{err:#}"), "dispatcher failed"),
        Ok(Err(join)) => tracing::warn!(%join, "dispatcher task failed"),
        Err(_) => tracing::warn!("dispatcher did not stop in time"),
        Ok(Ok(Ok(()))) => {}
    }
    pool.shutdown(STOP_TIMEOUT).await;

    let load = load.context("running the workload")?;
    Ok(DemoOutcome {
        replica_range: replica_range(settings.pool.min_replicas, &scale_events),
        scale_events,
        load,
        elapsed: started.elapsed(),
    })
}

/// The load tester's options: the workload, the dispatcher, and the autoscaler's decision as
/// an extra series next to the dispatcher's queue length and ready replicas.
fn load_options(
    settings: &DemoSettings,
    images: ImagePool,
    dispatcher_url: &str,
    autoscaler: &LocalAutoscaler,
) -> anyhow::Result<RunOptions> {
    let url = reqwest::Url::parse(dispatcher_url)?;
    let mut options = RunOptions::new(
        settings.workload.clone(),
        Arc::new(images),
        url,
        &settings.reports_dir,
    );
    options.drain_timeout = settings.drain_timeout;
    options.sample_interval = settings.sample_interval;
    let desired = autoscaler.handle().metrics().desired_replicas.clone();
    options.samplers.push(Arc::new(FnSampler(move || {
        vec![Sample::new(
            DESIRED_REPLICAS,
            SeriesKind::Replicas,
            desired.get() as f64,
        )]
    })));
    Ok(options)
}

/// The fewest and most replicas over the run: the start count and every event's result.
fn replica_range(initial: u32, events: &[ScaleEvent]) -> (u32, u32) {
    events
        .iter()
        .map(|e| e.to)
        .fold((initial, initial), |(lo, hi), n| (lo.min(n), hi.max(n)))
}

fn announce(settings: &DemoSettings, pool: &ReplicaPool, at: &Addresses) {
    let w = &settings.workload;
    eprintln!(
        "demo: {} s workload, {} requests, peak {}/s · replicas {}..={} · scaler {} every {:?}",
        w.seconds(),
        w.total(),
        w.peak(),
        settings.pool.min_replicas,
        settings.pool.max_replicas,
        settings.controller.policy,
        settings.controller.interval,
    );
    eprintln!(
        "demo: dispatcher {} (/stats, /metrics) · autoscaler {} (/status, /metrics) · replicas {:?}",
        at.dispatcher,
        at.autoscaler,
        pool.endpoints().borrow().as_slice(),
    );
}

/// A progress line on stderr every few seconds of the run, and one when sending ends.
fn progress_printer(pool: Arc<ReplicaPool>) -> impl Fn(&Progress) + Send + Sync + 'static {
    let last = AtomicU64::new(u64::MAX);
    move |p: &Progress| {
        let slot = p.elapsed_seconds as u64 / PROGRESS_EVERY_SECONDS;
        if p.phase.is_active() && last.swap(slot, Ordering::Relaxed) == slot {
            return;
        }
        let p99 = p
            .latency_p99_ms
            .map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"));
        eprintln!(
            "[{:>4.0} s] second {:>3}/{} · sent {:>5} · ok {:>5} · failed {:>3} · waiting {:>4} · replicas {} · p99 {p99}",
            p.elapsed_seconds,
            p.second,
            p.seconds,
            p.sent,
            p.succeeded,
            p.failed + p.rejected + p.send_errors,
            p.outstanding,
            pool.replicas(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_range_covers_the_start_and_every_event() {
        let event = |from, to| ScaleEvent {
            at_unix_ms: 0.0,
            from,
            to,
        };
        assert_eq!(replica_range(1, &[]), (1, 1));
        assert_eq!(
            replica_range(1, &[event(1, 3), event(3, 2), event(2, 1)]),
            (1, 3)
        );
        assert_eq!(replica_range(2, &[event(2, 1)]), (1, 2));
    }
}
