//! Serving: the entry points other crates call, and the graceful shutdown they share.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::Error;
use crate::model::Classifier;
use crate::routes::app;
use crate::state::AppState;

/// Serves at once, answering `/readyz` with 503 while the model loads and warms up on a
/// blocking thread, then 200. Returns when `shutdown` completes and in-flight requests have
/// finished, or with an error if the model cannot be loaded.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Settings the model does not need to judge fail here, before the port is served.
    config.preprocessing()?;
    let state = AppState::new(&config)?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(listener, state.clone(), async move {
        tokio::select! {
            () = shutdown => {}
            _ = stop_rx => {}
        }
    }));
    let loading = tokio::task::spawn_blocking(move || Classifier::load(&config));
    tokio::select! {
        loaded = loading => {
            let loaded = loaded
                .map_err(|err| Error::unexpected("model loader", err))
                .and_then(|result| result);
            match loaded {
                Ok(classifier) => state.set_classifier(Arc::new(classifier)),
                Err(err) => return stop_after_failed_load(err, stop_tx, server).await,
            }
        }
        // Shut down before the model was ready: nothing more to wait for.
        served = &mut server => return served.context("server task")?,
    }
    server.await.context("server task")?
}

/// A model that cannot be loaded stops the service: the server already answering `/readyz`
/// with 503 is told to stop, and the load error is what `run` returns.
async fn stop_after_failed_load(
    err: Error,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tracing::error!(%err, "cannot load the model; stopping");
    // Err: the server has already stopped on its own.
    let _ = stop.send(());
    server.await.context("server task")??;
    Err(err).context("loading the model")
}

/// Serves a classifier that is already loaded (ready at once). A local pool loads the model
/// once and starts several replicas with the same `Arc`.
pub async fn run_with_classifier(
    listener: TcpListener,
    config: Config,
    classifier: Arc<Classifier>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::with_classifier(&config, classifier)?;
    serve(listener, state, shutdown).await
}

/// Serves `state` until `shutdown` completes, then stops accepting connections and waits for
/// in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("listener address")?;
    tracing::info!(
        %addr,
        workers = state.pool().workers().get(),
        "inference service listening"
    );
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    tracing::info!(%addr, "inference service stopped");
    Ok(())
}
