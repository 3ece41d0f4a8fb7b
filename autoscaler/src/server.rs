//! Serving `autoscaler serve`: the control loop and the HTTP endpoints side by side, both
//! stopped by one shutdown signal (the server drains its connections gracefully, the
//! controller finishes its current step).

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::controller::{ControllerHandle, ControllerSettings, run_controller};
use crate::routes::app;
use crate::state::{AppState, ControlAccess};
use crate::target::ScaleTarget;
use crate::telemetry::TelemetrySource;

/// Runs the controller on `source` and `target`, and the HTTP endpoints on `listener`, until
/// `shutdown` completes. [`crate::run`] calls it with the Deployment and the source of the
/// flags; the demo with its local pool.
pub async fn run_with<S, T>(
    listener: TcpListener,
    settings: ControllerSettings,
    access: ControlAccess,
    source: S,
    target: T,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    S: TelemetrySource + 'static,
    T: ScaleTarget + 'static,
{
    let handle = ControllerHandle::new().context("metrics registry")?;
    // One signal, two listeners: the controller task and the server each wait on a receiver.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let controller = tokio::spawn(run_controller(
        source,
        target,
        settings,
        handle.clone(),
        stopped(stop_rx.clone()),
    ));
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "autoscaler listening");
    axum::serve(listener, app(AppState { handle, access }))
        .with_graceful_shutdown(stopped(stop_rx))
        .await?;
    controller.await.context("controller task")?;
    Ok(())
}
