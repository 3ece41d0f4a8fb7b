//! Serving and graceful shutdown: `load-tester serve` (control API + receiver), the
//! `/storeLatency` receiver alone, and [`run_load_test`], which wraps one run of the engine in
//! its own receiver (what `load-tester run` and the local demo call).
//!
//! The control endpoints follow the project's one token policy ([`harness_core::auth`]).
//! Where that policy would disable them (no token, not a loopback address, no
//! `--allow-unauthenticated`), [`run`] refuses to start instead: they are what `serve` is for,
//! and anyone who can reach the port could make this process send traffic.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use harness_core::auth::ControlAccess;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::routes::app;
use crate::run::{RunOptions, RunOutcome, run_and_report};
use crate::state::{AppState, Control};
use crate::store::{Progress, RunStore};

/// The `serve` router over a fresh store, without a socket (handler tests).
pub fn test_app(config: ServeConfig) -> Router {
    let access = ControlAccess::token_or_open(config.auth_token.as_deref());
    app(AppState::serve(Arc::new(Control::new(config, access))))
}

/// `load-tester serve`: serves the control API and receiver until `shutdown`, then stops any
/// run (its records get a few seconds) and returns.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.generator.settings()?;
    let addr = listener.local_addr().context("listener has no address")?;
    let token_empty = config.auth_token.as_deref().is_some_and(str::is_empty);
    anyhow::ensure!(!token_empty, "--auth-token is set but empty");
    let access = ControlAccess::for_bind(
        addr,
        config.auth_token.as_deref(),
        config.allow_unauthenticated,
    );
    if access.is_disabled() {
        anyhow::bail!(
            "refusing to serve the control endpoints on {addr} without a token: set \
             --auth-token/AUTH_TOKEN, bind a loopback address, or pass \
             --allow-unauthenticated/ALLOW_UNAUTHENTICATED=true"
        );
    }
    if access == ControlAccess::Open {
        tracing::warn!(%addr, "control endpoints are unauthenticated");
    }
    let control = Arc::new(Control::new(config, access));
    let state = AppState::serve(control.clone());
    tracing::info!(%addr, "load tester listening");
    let stop_runs = control.shutdown.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop_runs.cancel();
        })
        .await?;
    control.tasks.close();
    control.tasks.wait().await;
    Ok(())
}

/// Serves only the receiver (`/storeLatency`, `/runs/*`, `/metrics`, `/healthz`) over `state`.
pub async fn serve_receiver(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Runs a whole test with an embedded `/storeLatency` receiver on `receiver`, writes the
/// report and returns it; see [`run_and_report`] for `progress` and `shutdown`. The receiver
/// stops once the report is written, however this function exits.
pub async fn run_load_test<P, S>(
    options: RunOptions,
    receiver: TcpListener,
    progress: P,
    shutdown: S,
) -> Result<RunOutcome, Error>
where
    P: Fn(&Progress) + Send + Sync + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    let metrics = Metrics::new();
    let store = Arc::new(RunStore::new());
    let receiver_stop = CancellationToken::new();
    let state = AppState::receiver(store.clone(), metrics.clone());
    let server = tokio::spawn(serve_receiver(
        receiver,
        state,
        receiver_stop.clone().cancelled_owned(),
    ));
    // Stops the receiver however this function exits.
    let _stop_receiver = receiver_stop.clone().drop_guard();

    let outcome = run_and_report(options, &store, &metrics, progress, shutdown).await?;
    receiver_stop.cancel();
    if let Ok(Err(err)) = server.await {
        tracing::warn!(%err, "receiver stopped with an error");
    }
    Ok(outcome)
}
