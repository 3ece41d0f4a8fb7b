//! Start-up and shutdown of one dispatcher: which tasks run, and the order they stop in.
//!
//! Shutdown loses nothing the load tester counts: `/enqueue` answers 503 `shutting_down` at
//! once, the drain keeps going until the queue is empty and nothing is in flight or
//! `--shutdown-timeout` passes, then whatever is unfinished (in flight or still queued) is
//! recorded with outcome `shutdown`, the outbox has `--report-flush-timeout` to empty (pushed,
//! or pulled through `GET /records`), and only then does the HTTP server stop (so `/stats`,
//! `/metrics` and `/records` stay readable during the drain).

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use harness_core::wire::Outcome;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::config::Settings;
use crate::drain::{self, Drain};
use crate::endpoints::{self, EndpointSource};
use crate::outbox::{Outbox, Reporter};
use crate::record;
use crate::routes::app;
use crate::state::AppState;
use crate::upstream::Upstream;

/// Connecting to an inference pod takes longer than this only if the pod is gone (a dead pod
/// IP drops packets); fail fast and retry elsewhere instead of waiting `--request-timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time the HTTP server gets to finish open requests once everything else has stopped.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a dispatcher with validated settings until `shutdown` completes and the drain is over.
pub(crate) async fn serve(
    listener: TcpListener,
    settings: Settings,
    source: EndpointSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    source
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid endpoint source: {e}"))?;
    let state = AppState::new(settings)?;
    let client = http_client(state.settings())?;

    // Endpoint follower and prober: aborted when this function returns.
    let mut background = start_endpoints(source, &state, &client);
    let reporting = Reporting::start(&state, &client);
    let mut draining = Draining::start(&state, client);
    let mut server = HttpServer::start(listener, &state)?;

    server.run_until(shutdown).await?;
    draining.finish(&state).await;
    reporting.flush().await;
    server.stop().await?;
    background.shutdown().await;
    tracing::info!(completed = ?state.metrics().completed_totals(), "dispatcher stopped");
    Ok(())
}

/// The client for inference and the report URL: no proxy (pods are addressed directly), and a
/// connect timeout short enough to move on from a pod that is gone.
fn http_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT.min(settings.request_timeout))
        .build()
        .context("building the HTTP client")
}

/// Starts following the endpoint source and probing `/readyz`; the tasks stop with the set.
fn start_endpoints(
    source: EndpointSource,
    state: &AppState,
    client: &reqwest::Client,
) -> JoinSet<()> {
    let mut background = JoinSet::new();
    background.spawn(endpoints::follow(source, state.balancer().clone()));
    background.spawn(endpoints::probe_forever(
        client.clone(),
        state.balancer().clone(),
    ));
    background
}

/// The tasks that empty the outbox: the reporter (if `--report-url` is set) and the sweep of
/// expired records; and the signal that tells them to flush and stop.
struct Reporting {
    done: CancellationToken,
    push: Option<AbortOnDropHandle<()>>,
    sweep: AbortOnDropHandle<()>,
    flush_timeout: Duration,
    outbox: Arc<Outbox>,
}

impl Reporting {
    fn start(state: &AppState, client: &reqwest::Client) -> Self {
        let settings = state.settings();
        let done = CancellationToken::new();
        let outbox = state.outbox().clone();
        let push = settings.report_url.clone().map(|url| {
            let reporter = Reporter {
                client: client.clone(),
                url,
                outbox: outbox.clone(),
                interval: settings.report_interval,
                metrics: state.metrics().clone(),
            };
            AbortOnDropHandle::new(tokio::spawn(
                reporter.run(done.clone(), settings.report_flush_timeout),
            ))
        });
        let sweep = {
            let outbox = outbox.clone();
            let done = done.clone();
            AbortOnDropHandle::new(tokio::spawn(async move { outbox.expire_until(done).await }))
        };
        Self {
            done,
            push,
            sweep,
            flush_timeout: settings.report_flush_timeout,
            outbox,
        }
    }

    /// Gives the outbox `--report-flush-timeout` to empty, by push and by pull (the HTTP server
    /// still answers `GET /records`); what is left then is dropped as `shutdown`.
    async fn flush(self) {
        let deadline = Instant::now() + self.flush_timeout;
        self.done.cancel();
        let _ = self.sweep.await;
        if let Some(push) = self.push {
            let _ = push.await;
        }
        if !self.outbox.wait_empty(deadline).await {
            let lost = self.outbox.drop_all();
            tracing::warn!(
                lost,
                "latency records still undelivered at shutdown (neither pushed nor pulled)"
            );
        }
    }
}

/// The drain task, the item tasks it spawned, and the token that makes those give up.
struct Draining {
    task: AbortOnDropHandle<()>,
    in_flight: TaskTracker,
    give_up: CancellationToken,
}

impl Draining {
    fn start(state: &AppState, client: reqwest::Client) -> Self {
        let give_up = CancellationToken::new();
        let in_flight = TaskTracker::new();
        let upstream = Arc::new(Upstream::new(
            client,
            state.settings(),
            state.balancer().clone(),
            state.recorder().clone(),
            state.metrics().clone(),
            give_up.clone(),
        ));
        let drain = Drain::new(
            state.queue().clone(),
            state.balancer().clone(),
            state.settings().drain_rate,
            Instant::now(),
        );
        let task =
            AbortOnDropHandle::new(tokio::spawn(drain::run(drain, upstream, in_flight.clone())));
        Self {
            task,
            in_flight,
            give_up,
        }
    }

    /// Stops accepting, drains until the queue is empty or `--shutdown-timeout` passes, then
    /// records whatever is unfinished as `shutdown`.
    async fn finish(&mut self, state: &AppState) {
        let settings = state.settings();
        let (queued, _) = state.queue().usage();
        tracing::info!(queued, timeout = ?settings.shutdown_timeout, "shutting down: refusing new items, draining the queue");
        state.queue().stop_accepting();
        let drained = self
            .until_empty(Instant::now() + settings.shutdown_timeout)
            .await;
        self.abandon().await;
        let never_sent = record_unsent(state);
        if !drained {
            tracing::warn!(
                never_sent,
                "shutdown timeout passed; unfinished items recorded as `shutdown`"
            );
        }
    }

    /// Waits for the drain to end (it does once the queue is closed and empty) and for every
    /// item it sent; `false` if `deadline` came first.
    async fn until_empty(&mut self, deadline: Instant) -> bool {
        tokio::time::timeout_at(deadline, async {
            let _ = (&mut self.task).await;
            self.in_flight.close();
            self.in_flight.wait().await;
        })
        .await
        .is_ok()
    }

    /// Past the deadline: stops the drain, and items in flight give up (each records
    /// `shutdown`). Returns once every item task has finished.
    async fn abandon(&mut self) {
        self.task.abort();
        self.give_up.cancel();
        self.in_flight.close();
        self.in_flight.wait().await;
    }
}

/// Records the items still queued as `shutdown` without sending them; returns how many.
fn record_unsent(state: &AppState) -> usize {
    let left = state.queue().take_all();
    for item in &left {
        state.finish(record::never_dispatched(item, Outcome::Shutdown));
    }
    left.len()
}

/// The HTTP server task, stopped by `stop` only: it outlives the drain so `/stats` and
/// `/metrics` stay readable.
struct HttpServer {
    task: AbortOnDropHandle<std::io::Result<()>>,
    stop: CancellationToken,
}

impl HttpServer {
    fn start(listener: TcpListener, state: &AppState) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let addr = listener.local_addr()?;
        let task = AbortOnDropHandle::new(tokio::spawn(
            axum::serve(listener, app(state.clone()))
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        ));
        let settings = state.settings();
        tracing::info!(
            %addr,
            instance_id = state.instance_id(),
            drain_rate = settings.drain_rate,
            max_in_flight = settings.max_in_flight,
            "dispatcher listening"
        );
        Ok(Self { task, stop })
    }

    /// Serves until `shutdown` completes; an error if the server stops before that.
    async fn run_until(&mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::select! {
            () = shutdown => Ok(()),
            joined = &mut self.task => {
                // The server only stops on `stop`; anything else is a failure.
                joined.context("HTTP server task")?.context("HTTP server")?;
                anyhow::bail!("HTTP server stopped unexpectedly");
            }
        }
    }

    /// Stops serving, giving open requests [`SERVER_STOP_TIMEOUT`] to finish.
    async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        match tokio::time::timeout(SERVER_STOP_TIMEOUT, &mut self.task).await {
            Ok(joined) => joined.context("HTTP server task")?.context("HTTP server")?,
            Err(_) => tracing::warn!("HTTP server did not finish its open requests in time"),
        }
        Ok(())
    }
}
