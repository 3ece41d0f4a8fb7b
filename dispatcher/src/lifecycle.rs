//! Start-up and shutdown of one dispatcher: which tasks run, and the order they stop in.
//!
//! Shutdown loses nothing the load tester counts: `/enqueue` answers 503 `shutting_down` at
//! once, the drain keeps going until the queue is empty and nothing is in flight or
//! `--shutdown-timeout` passes, then whatever is unfinished (in flight or still queued) is
//! recorded with outcome `shutdown`, the outbox is flushed for at most
//! `--report-flush-timeout`, and only then does the HTTP server stop (so `/stats` and
//! `/metrics` stay readable during the drain).

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::config::{ConfiguredEndpoints, Settings};
use crate::drain::{self, Drain};
use crate::endpoints::{self, EndpointSource};
use crate::record;
use crate::report::Reporter;
use crate::routes::app;
use crate::service::AppState;
use crate::upstream::{OUTCOME_SHUTDOWN, Upstream};

/// Connecting to an inference pod takes longer than this only if the pod is gone (a dead pod
/// IP drops packets); fail fast and retry elsewhere instead of waiting `--request-timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time the HTTP server gets to finish open requests once everything else has stopped.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

impl From<&ConfiguredEndpoints> for EndpointSource {
    fn from(configured: &ConfiguredEndpoints) -> Self {
        match configured {
            ConfiguredEndpoints::Static(urls) => {
                EndpointSource::Static(urls.iter().map(|u| u.to_string()).collect())
            }
            ConfiguredEndpoints::Dns { host_port, refresh } => EndpointSource::Dns {
                host_port: host_port.clone(),
                refresh: *refresh,
            },
        }
    }
}

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
    let state = AppState::new(settings.clone())?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT.min(settings.request_timeout))
        .build()
        .context("building the HTTP client")?;

    // Endpoint follower and prober: aborted when this function returns.
    let mut background = JoinSet::new();
    background.spawn(endpoints::follow(source, state.balancer().clone()));
    background.spawn(endpoints::probe_forever(
        client.clone(),
        state.balancer().clone(),
    ));

    let reporting_done = CancellationToken::new();
    let reporter = settings.report_url.clone().map(|url| {
        let reporter = Reporter {
            client: client.clone(),
            url,
            outbox: state.outbox().clone(),
            interval: settings.report_interval,
            metrics: state.metrics().clone(),
        };
        AbortOnDropHandle::new(tokio::spawn(
            reporter.run(reporting_done.clone(), settings.report_flush_timeout),
        ))
    });

    let give_up = CancellationToken::new();
    let in_flight = TaskTracker::new();
    let upstream = Arc::new(Upstream::new(client, state.clone(), give_up.clone()));
    let drain = Drain::new(
        state.queue().clone(),
        state.balancer().clone(),
        settings.drain_rate,
        Instant::now(),
    );
    let mut drain_task =
        AbortOnDropHandle::new(tokio::spawn(drain::run(drain, upstream, in_flight.clone())));

    let server_stop = CancellationToken::new();
    let addr = listener.local_addr()?;
    let mut server = AbortOnDropHandle::new(tokio::spawn(
        axum::serve(listener, app(state.clone()))
            .with_graceful_shutdown(server_stop.clone().cancelled_owned())
            .into_future(),
    ));
    tracing::info!(
        %addr,
        drain_rate = settings.drain_rate,
        max_in_flight = settings.max_in_flight,
        "dispatcher listening"
    );

    tokio::select! {
        () = shutdown => {}
        joined = &mut server => {
            // The server only stops on `server_stop`; anything else is a failure.
            joined.context("HTTP server task")?.context("HTTP server")?;
            anyhow::bail!("HTTP server stopped unexpectedly");
        }
    }

    // 1. Stop accepting; drain what is queued until done or the deadline.
    let (queued, _) = state.queue().usage();
    tracing::info!(queued, timeout = ?settings.shutdown_timeout, "shutting down: refusing new items, draining the queue");
    state.queue().stop_accepting();
    let deadline = Instant::now() + settings.shutdown_timeout;
    let drained = tokio::time::timeout_at(deadline, async {
        // The drain ends by itself once the queue is closed and empty.
        let _ = (&mut drain_task).await;
        in_flight.close();
        in_flight.wait().await;
    })
    .await
    .is_ok();

    // 2. Past the deadline: in-flight items give up (each records `shutdown`), queued items
    // are recorded as `shutdown` without being sent.
    drain_task.abort();
    give_up.cancel();
    in_flight.close();
    in_flight.wait().await;
    let left = state.queue().take_all();
    for item in &left {
        state.finish(record::never_dispatched(item, OUTCOME_SHUTDOWN));
    }
    if !drained {
        tracing::warn!(
            never_sent = left.len(),
            "shutdown timeout passed; unfinished items recorded as `shutdown`"
        );
    }

    // 3. Flush the outbox (bounded by --report-flush-timeout), then stop serving.
    reporting_done.cancel();
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    server_stop.cancel();
    match tokio::time::timeout(SERVER_STOP_TIMEOUT, &mut server).await {
        Ok(joined) => joined.context("HTTP server task")?.context("HTTP server")?,
        Err(_) => tracing::warn!("HTTP server did not finish its open requests in time"),
    }
    background.shutdown().await;
    tracing::info!(completed = ?state.metrics().completed_totals(), "dispatcher stopped");
    Ok(())
}
