//! The run engine: one load test from start to report, shared by the CLI, the HTTP server and
//! the in-process demo. It knows nothing of HTTP serving: records reach it through its own
//! [`Puller`] (the dispatcher's `GET /records`) and through the [`RunStore`] its caller feeds
//! (`server` serves the `/storeLatency` receiver around it).
//!
//! [`run_and_report`] runs the schedule, waits for the records of accepted requests (up to the
//! drain timeout), writes the report and returns the stats. The `serve` mode, which reports on
//! request, uses the pieces: [`prepare`] then [`execute`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use reqwest::Url;
use tokio_util::sync::CancellationToken;

use harness_core::sync::lock;

use crate::base_url::endpoint;
use crate::delivery::PullStatus;
use crate::error::Error;
use crate::journal::{FORMAT_VERSION, Header, Journal};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pull::{self, Puller};
use crate::report::{ReportFiles, write_report};
pub use crate::run_options::RunOptions;
use crate::sampler::{DispatcherStatsSampler, Sampler, sample_all};
use crate::schedule::{Arrivals, Plan};
use crate::sender::{DirectSends, EnqueueClient, Generator};
use crate::stats::Stats;
use crate::store::{Phase, Progress, RunInfo, RunState, RunStore};
use crate::target::DirectTarget;

/// After an interruption, how long records still have to arrive.
const INTERRUPTED_DRAIN: Duration = Duration::from_secs(3);
/// How often the progress callback runs.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Delay between preparing a run and its first send, so the pacer starts on time.
const START_DELAY: Duration = Duration::from_millis(50);

/// The result of a finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub stats: Stats,
    pub report: ReportFiles,
    /// True when shutdown stopped the run before its schedule ended.
    pub interrupted: bool,
}

/// A run registered in a store and ready to execute.
pub struct PreparedRun {
    pub state: Arc<RunState>,
    generator: Arc<Generator>,
    plan: Arc<Plan>,
    samplers: Vec<Arc<dyn Sampler>>,
    /// `None` when the run does not pull its records.
    puller: Option<Puller>,
    options: RunOptions,
}

/// `20250612T153012Z-4f2a`: sorts by start time, unique enough for one process's runs.
pub fn new_run_id() -> String {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{stamp}-{:04x}", rand::rng().random::<u16>())
}

/// Checks the dispatcher answers at all (any HTTP status will do).
async fn preflight(client: &reqwest::Client, dispatcher: &Url) -> Result<(), Error> {
    let url = endpoint(dispatcher, "healthz");
    match client.get(url).timeout(Duration::from_secs(3)).send().await {
        Ok(_) => Ok(()),
        Err(source) => Err(Error::DispatcherUnreachable {
            url: dispatcher.to_string(),
            source,
        }),
    }
}

/// Checks a model server answers at all (any HTTP status will do).
async fn preflight_target(client: &reqwest::Client, target: &DirectTarget) -> Result<(), Error> {
    let url = target.ready_url();
    match client.get(url).timeout(Duration::from_secs(3)).send().await {
        Ok(_) => Ok(()),
        Err(source) => Err(Error::TargetUnreachable {
            url: target.url().to_string(),
            source,
        }),
    }
}

/// Builds the run and registers it in `store` so records can be matched from the first send.
pub async fn prepare(
    options: RunOptions,
    store: &RunStore,
    metrics: &Metrics,
) -> Result<PreparedRun, Error> {
    let client = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .connect_timeout(options.request_timeout.min(Duration::from_secs(5)))
        .tcp_nodelay(true)
        .build()
        .map_err(Error::HttpClient)?;
    if options.preflight {
        match &options.direct {
            None => preflight(&client, &options.dispatcher_url).await?,
            Some(target) => preflight_target(&client, target).await?,
        }
    }
    let plan = Arc::new(Plan::new(
        &options.workload,
        options.arrivals,
        options.max_requests,
    ));
    let run_id = new_run_id();
    // A direct target answers each request itself: there are no records to pull.
    let pull = match options.direct {
        Some(_) => PullStatus::Off,
        None => {
            let (dispatcher, delivery) = (&options.dispatcher_url, options.record_delivery);
            pull::probe(&client, dispatcher, &run_id, delivery).await?
        }
    };
    let state = register(run_id, &options, plan.clone(), store, metrics)?;
    state.set_pull_status(pull);
    let puller = (pull == PullStatus::Active).then(|| {
        Puller::new(
            client.clone(),
            &options.dispatcher_url,
            state.clone(),
            metrics.clone(),
        )
    });

    let mut samplers = options.samplers.clone();
    if options.sample_dispatcher && options.direct.is_none() {
        let run = state.clone();
        let sampler = DispatcherStatsSampler::new(client.clone(), &options.dispatcher_url)
            .observing_instances(Arc::new(move |id| run.observe_dispatcher(id)));
        samplers.push(Arc::new(sampler));
    }
    let (send_url, direct) = match &options.direct {
        None => (endpoint(&options.dispatcher_url, "enqueue"), None),
        Some(target) => {
            let requests = target
                .requests(&options.pool)
                .map_err(Error::TargetRequest)?;
            let target = target.clone();
            (target.infer_url(), Some(DirectSends { target, requests }))
        }
    };
    let client = EnqueueClient::new(&send_url, options.request_timeout).map_err(|source| {
        Error::EnqueueUri {
            url: send_url.to_string(),
            source,
        }
    })?;
    let generator = Arc::new(Generator {
        client,
        pool: options.pool.clone(),
        run: state.clone(),
        metrics: metrics.clone(),
        direct,
    });
    Ok(PreparedRun {
        state,
        generator,
        plan,
        samplers,
        puller,
        options,
    })
}

/// A new run of `plan`, due to start in [`START_DELAY`], journaling to
/// `<reports_dir>/<runId>/journal.jsonl`, added to `store`.
fn register(
    run_id: String,
    options: &RunOptions,
    plan: Arc<Plan>,
    store: &RunStore,
    metrics: &Metrics,
) -> Result<Arc<RunState>, Error> {
    let start = Instant::now() + START_DELAY;
    let start_unix_ms = harness_core::wire::now_unix_millis() + START_DELAY.as_secs_f64() * 1e3;
    let info = RunInfo {
        run_id: run_id.clone(),
        dispatcher_url: options.dispatcher_url.to_string(),
        arrivals: options.arrivals.process(),
        max_requests: options.max_requests,
        concurrency: options.concurrency,
        images: options.pool.len(),
        record_delivery: options.record_delivery,
        target: options.target_info(),
    };
    let header = Header {
        version: FORMAT_VERSION,
        run_id: run_id.clone(),
        started_at_ms: start_unix_ms,
        dispatcher_url: info.dispatcher_url.clone(),
        target: info.target.clone(),
        arrivals: info.arrivals,
        seed: match options.arrivals {
            Arrivals::Poisson { seed } => Some(seed),
            Arrivals::Uniform => None,
        },
        max_requests: options.max_requests,
        rates: plan.rates().to_vec(),
        planned: plan.total(),
        concurrency: info.concurrency,
        images: info.images,
        record_delivery: info.record_delivery,
    };
    let journal = Journal::create(&options.reports_dir.join(&run_id), &header, metrics)?;
    let ledger = Ledger::new(run_id, plan, start_unix_ms);
    let state = Arc::new(RunState::new(info, start, ledger).with_journal(journal));
    store.insert(state.clone());
    Ok(state)
}

/// Sends the schedule, waits for the records, and leaves the run `Done` or `Interrupted`.
/// `cancel` stops sending; records then still have a few seconds to arrive.
pub async fn execute(run: PreparedRun, metrics: &Metrics, cancel: CancellationToken) -> Phase {
    let state = run.state.clone();
    state.set_phase(Phase::Sending);
    metrics.run_active.inc();
    tracing::info!(
        run_id = state.id(),
        planned = run.plan.total(),
        seconds = run.plan.seconds(),
        "run started"
    );
    let sampling = CancellationToken::new();
    let sampler_task = tokio::spawn(sample_loop(
        state.clone(),
        run.samplers,
        run.options.sample_interval,
        sampling.clone(),
    ));
    let pulling = CancellationToken::new();
    let puller_task = run
        .puller
        .map(|puller| tokio::spawn(puller.run(pulling.clone())));

    let report = run
        .generator
        .run(run.plan.clone(), run.options.concurrency, cancel.clone())
        .await;
    let mut interrupted = match report {
        Ok(report) => report.cancelled,
        Err(err) => {
            tracing::error!(%err, "cannot start the pacer thread");
            true
        }
    };
    state.set_phase(Phase::Draining);
    let drain = if interrupted {
        run.options.drain_timeout.min(INTERRUPTED_DRAIN)
    } else {
        run.options.drain_timeout
    };
    let all_in = drain_records(&state, drain, &cancel).await;
    interrupted |= cancel.is_cancelled();
    sampling.cancel();
    pulling.cancel();
    let _ = sampler_task.await;
    if let Some(task) = puller_task {
        let _ = task.await;
    }
    log_delivery(&state);

    let outstanding = lock(&state.ledger).outstanding();
    if !all_in {
        tracing::warn!(
            run_id = state.id(),
            outstanding,
            "stopped waiting for records"
        );
    }
    let phase = if interrupted {
        Phase::Interrupted
    } else {
        Phase::Done
    };
    state.journal.end(interrupted).await;
    state.set_phase(phase);
    metrics.run_active.dec();
    tracing::info!(run_id = state.id(), ?phase, outstanding, "run finished");
    phase
}

/// Says which paths brought the records, and what the dispatcher dropped.
fn log_delivery(state: &RunState) {
    let d = state.delivery();
    tracing::info!(
        run_id = state.id(),
        paths = d.paths(),
        pushed = d.pushed,
        pulled = d.pulled,
        redelivered = d.redelivered,
        "records delivered"
    );
    let dropped = d.dispatcher_dropped;
    if dropped.total() > 0 {
        tracing::warn!(
            run_id = state.id(),
            capacity = dropped.capacity,
            retention = dropped.retention,
            refused = dropped.refused,
            shutdown = dropped.shutdown,
            "the dispatcher dropped records of this run before they were collected; \
             their requests count as missing"
        );
    }
}

/// Waits until every accepted request has its record, the timeout passes, or (after a
/// cancellation) a short grace period passes. True when nothing is outstanding.
async fn drain_records(state: &RunState, timeout: Duration, cancel: &CancellationToken) -> bool {
    let mut deadline = tokio::time::Instant::now() + timeout;
    let mut cancel_seen = cancel.is_cancelled();
    loop {
        let notified = state.records_arrived.notified();
        tokio::pin!(notified);
        // Registered before the check, so a batch stored in between still wakes us.
        notified.as_mut().enable();
        if lock(&state.ledger).outstanding() == 0 {
            return true;
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => return false,
            () = cancel.cancelled(), if !cancel_seen => {
                cancel_seen = true;
                deadline = deadline.min(tokio::time::Instant::now() + INTERRUPTED_DRAIN);
            }
        }
    }
}

/// Samples every `interval` until cancelled, starting at once.
async fn sample_loop(
    state: Arc<RunState>,
    samplers: Vec<Arc<dyn Sampler>>,
    interval: Duration,
    stop: CancellationToken,
) {
    if samplers.is_empty() {
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        let at = state.elapsed();
        let samples = sample_all(&samplers, interval.mul_f64(0.9)).await;
        state.push_samples(at, samples);
    }
}

/// Runs a whole test whose records arrive through `store`, writes the report and returns it.
/// Whoever calls this feeds `store` (the `/storeLatency` receiver of
/// `server::run_load_test`, or the caller's own). `progress` is called every 250 ms
/// and once at the end. When `shutdown` resolves, sending stops, records get a few more
/// seconds, and the report of what was collected is still written (`interrupted` is then true).
pub async fn run_and_report<P, S>(
    options: RunOptions,
    store: &RunStore,
    metrics: &Metrics,
    progress: P,
    shutdown: S,
) -> Result<RunOutcome, Error>
where
    P: Fn(&Progress) + Send + Sync + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    let cancel = CancellationToken::new();
    let on_shutdown = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            shutdown.await;
            cancel.cancel();
        })
    };
    let _stop_watch = AbortOnDrop(on_shutdown);

    let reports_dir = options.reports_dir.clone();
    let total_requests = options.total_requests;
    let prepared = prepare(options, store, metrics).await?;
    let state = prepared.state.clone();
    let ticker = tokio::spawn(report_progress(state.clone(), progress));
    let phase = execute(prepared, metrics, cancel).await;
    // The ticker reports the final state once more, then returns.
    let _ = ticker.await;

    let (stats, report) = write_report(&state, total_requests, &reports_dir).await?;
    Ok(RunOutcome {
        run_id: state.id().to_owned(),
        stats,
        report,
        interrupted: phase == Phase::Interrupted,
    })
}

/// Calls `progress` every [`PROGRESS_EVERY`] until the run is over, then once more.
async fn report_progress<P>(state: Arc<RunState>, progress: P)
where
    P: Fn(&Progress) + Send + Sync + 'static,
{
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    loop {
        every.tick().await;
        progress(&state.progress());
        if !state.phase().is_active() {
            return;
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
