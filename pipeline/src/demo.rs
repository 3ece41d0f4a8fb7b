//! The demo from start to report: start the replica pool, the dispatcher and the autoscaler
//! (and Prometheus with `--prometheus`), run the workload through the load tester, wait for
//! the queue to drain and every record to arrive, write the report, and stop everything in
//! order.
//!
//! Start-up follows the data: replicas (ready before any load), the load tester's receiver (so
//! the dispatcher's reports have somewhere to go), the dispatcher, Prometheus, the autoscaler,
//! and only then the load. Shutdown runs the other way: the autoscaler stops deciding, the
//! dispatcher drains what is left, the replicas finish their in-flight requests.
//!
//! Ctrl-C stops the sending at once; the dispatcher then drains for at most 1.5 s and reports
//! what it had to abandon as `shutdown`, within the load tester's grace period for late
//! records, so the report of an interrupted run still accounts for every request.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use dispatcher::EndpointSource;
use load_tester::{FnSampler, ImagePool, Progress, RunOptions, RunOutcome, Sample, SeriesKind};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::autoscale::{LocalAutoscaler, TelemetryFrom};
use crate::config::DemoSettings;
use crate::prometheus::{LocalPrometheus, PrometheusSampler, Targets};
use crate::replica_pool::{ReplicaPool, ScaleEvent};

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
    /// Each replica's cold start (start to first 200 on `/readyz`), in order; with
    /// `--min-replicas 0` the first requests wait the first one.
    pub cold_starts: Vec<Duration>,
    /// Wall time from start-up to the end of the shutdown.
    pub elapsed: Duration,
}

impl DemoOutcome {
    /// True when Ctrl-C cut the run short.
    pub fn interrupted(&self) -> bool {
        self.load.interrupted
    }
}

/// Where the running services answer, handed to the observer when the load starts.
#[derive(Debug, Clone)]
pub struct Services {
    /// Base URLs (`http://127.0.0.1:PORT`).
    pub dispatcher: String,
    pub autoscaler: String,
    /// The load tester's receiver (`/storeLatency`, `/metrics`).
    pub load_tester: String,
    pub prometheus: Option<String>,
    /// Prometheus's query log (one JSON object per query answered).
    pub prometheus_query_log: Option<PathBuf>,
    /// The replicas' base URLs, current as the pool scales.
    pub replicas: watch::Receiver<Vec<String>>,
}

/// Runs the demo until the workload is done and drained, or `shutdown` completes.
pub async fn run(
    settings: DemoSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<DemoOutcome> {
    run_observed(settings, shutdown, |_| {}).await
}

/// Like [`run`]; `observer` learns where every service answers just before the load starts
/// (tests use it to look at the live system).
pub async fn run_observed(
    settings: DemoSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    observer: impl FnOnce(Services),
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
    let pool = ReplicaPool::start(settings.pool.clone()).await?;
    tokio::select! {
        ready = pool.wait_ready(READY_TIMEOUT) => ready.context("starting the replicas")?,
        () = interrupted.cancelled() => anyhow::bail!("interrupted before the load started"),
    }
    let receiver = TcpListener::bind(("127.0.0.1", 0)).await?;
    let running = Running::start(&settings, pool, &receiver, &interrupted).await?;
    announce(&settings, &running.services);
    observer(running.services.clone());

    let options = load_options(&settings, images, &running)?;
    let load = load_tester::run_load_test(
        options,
        receiver,
        progress_printer(running.pool.clone()),
        interrupted.clone().cancelled_owned(),
    )
    .await;

    let scale_events = running.pool.events();
    let cold_starts = running.pool.cold_starts();
    running.stop().await;
    let load = load.context("running the workload")?;
    Ok(DemoOutcome {
        replica_range: replica_range(settings.pool.min_replicas, &scale_events),
        scale_events,
        cold_starts,
        load,
        elapsed: started.elapsed(),
    })
}

/// Everything that runs while the load tester works.
struct Running {
    pool: Arc<ReplicaPool>,
    dispatcher: AbortOnDropHandle<anyhow::Result<()>>,
    stop_dispatcher: CancellationToken,
    autoscaler: LocalAutoscaler,
    prometheus: Option<LocalPrometheus>,
    services: Services,
}

impl Running {
    /// Starts the dispatcher (reporting to `receiver`), Prometheus if asked, and the
    /// autoscaler on `pool`.
    async fn start(
        settings: &DemoSettings,
        pool: Arc<ReplicaPool>,
        receiver: &TcpListener,
        interrupted: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let receiver_addr = receiver.local_addr()?;
        let dispatcher_listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let autoscaler_listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let targets = Targets {
            dispatcher: dispatcher_listener.local_addr()?,
            load_tester: receiver_addr,
            autoscaler: autoscaler_listener.local_addr()?,
        };
        let dispatcher_url = format!("http://{}", targets.dispatcher);

        let mut config = settings.dispatcher.clone();
        config.report_url = format!("http://{receiver_addr}/storeLatency");
        // A child token: Ctrl-C stops the dispatcher, and so does the end of the run.
        let stop_dispatcher = interrupted.child_token();
        let dispatcher = spawn(dispatcher::run_with_endpoints(
            dispatcher_listener,
            config,
            EndpointSource::Watch(pool.endpoints()),
            stop_dispatcher.clone().cancelled_owned(),
        ));

        let prometheus = match &settings.prometheus {
            Some(p) => Some(LocalPrometheus::start(p, targets, pool.endpoints()).await?),
            None => None,
        };
        let telemetry = match &prometheus {
            Some(p) => TelemetryFrom::Prometheus {
                url: p.url().to_owned(),
            },
            None => TelemetryFrom::Scrape {
                dispatcher_metrics_url: format!("{dispatcher_url}/metrics"),
            },
        };
        let source = telemetry.source(&pool, &settings.controller)?;
        let autoscaler = LocalAutoscaler::start(
            source,
            pool.clone(),
            settings.controller.clone(),
            autoscaler_listener,
        )?;
        let services = Services {
            dispatcher: dispatcher_url,
            autoscaler: autoscaler.url().to_owned(),
            load_tester: format!("http://{receiver_addr}"),
            prometheus: prometheus.as_ref().map(|p| p.url().to_owned()),
            prometheus_query_log: prometheus.as_ref().map(LocalPrometheus::query_log),
            replicas: pool.endpoints(),
        };
        Ok(Self {
            pool,
            dispatcher,
            stop_dispatcher,
            autoscaler,
            prometheus,
            services,
        })
    }

    /// Stops everything, the reverse of start-up.
    async fn stop(mut self) {
        self.autoscaler.stop(STOP_TIMEOUT).await;
        self.stop_dispatcher.cancel();
        match tokio::time::timeout(STOP_TIMEOUT, &mut self.dispatcher).await {
            Ok(Ok(Err(err))) => tracing::warn!(err = format!("{err:#}"), "dispatcher failed"),
            Ok(Err(join)) => tracing::warn!(%join, "dispatcher task failed"),
            Err(_) => tracing::warn!("dispatcher did not stop in time"),
            Ok(Ok(Ok(()))) => {}
        }
        self.pool.shutdown(STOP_TIMEOUT).await;
        if let Some(prometheus) = self.prometheus {
            prometheus.stop().await;
        }
    }
}

fn spawn<T: Send + 'static>(
    task: impl Future<Output = T> + Send + 'static,
) -> AbortOnDropHandle<T> {
    let handle: JoinHandle<T> = tokio::spawn(task);
    AbortOnDropHandle::new(handle)
}

/// The load tester's options: the workload, the dispatcher, and extra series for the
/// queue/replicas plot (the autoscaler's decision; Prometheus's view when it runs).
fn load_options(
    settings: &DemoSettings,
    images: ImagePool,
    running: &Running,
) -> anyhow::Result<RunOptions> {
    let url = reqwest::Url::parse(&running.services.dispatcher)?;
    let mut options = RunOptions::new(
        settings.workload.clone(),
        Arc::new(images),
        url,
        &settings.reports_dir,
    );
    options.drain_timeout = settings.drain_timeout;
    options.sample_interval = settings.sample_interval;
    let controller = running.autoscaler.handle().clone();
    options.samplers.push(Arc::new(FnSampler(move || {
        // Nothing before the first decision: a gap, not a dip (0 is a real decision when the
        // pool may scale to zero).
        let replicas = controller.status().and_then(|s| s.recommendation);
        replicas
            .map(|r| {
                Sample::new(
                    DESIRED_REPLICAS,
                    SeriesKind::Replicas,
                    f64::from(r.replicas),
                )
            })
            .into_iter()
            .collect()
    })));
    if let Some(url) = &running.services.prometheus {
        options.samplers.push(PrometheusSampler::new(url)?);
    }
    Ok(options)
}

/// The fewest and most replicas over the run: the start count and every event's result.
fn replica_range(initial: u32, events: &[ScaleEvent]) -> (u32, u32) {
    events
        .iter()
        .map(|e| e.to)
        .fold((initial, initial), |(lo, hi), n| (lo.min(n), hi.max(n)))
}

fn announce(settings: &DemoSettings, at: &Services) {
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
        "demo: dispatcher {} (/stats, /metrics) · autoscaler {} (/status, /metrics) · load tester {} (/metrics)",
        at.dispatcher, at.autoscaler, at.load_tester,
    );
    if let Some(url) = &at.prometheus {
        eprintln!("demo: Prometheus {url} (the autoscaler reads its telemetry there)");
    }
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
