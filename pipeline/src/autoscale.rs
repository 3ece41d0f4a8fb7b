//! The local autoscaler: the autoscaler crate's controller, with the replica pool as its
//! target, and its HTTP side (`/metrics`, `/status`) on a local port.
//!
//! Telemetry comes from the services' own `/metrics` by default (the dispatcher's, and each
//! replica's as the pool publishes them), or from a Prometheus server when the demo runs one.

use std::future::IntoFuture;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use autoscaler::checkpoint::{Checkpointing, FileStore, StateStore};
use autoscaler::{
    AnySource, ControllerHandle, ControllerSettings, InferenceTargets, PrometheusSource,
    ScrapeSource, TelemetrySource,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::replica_pool::ReplicaPool;

/// Where the controller reads its telemetry.
#[derive(Debug, Clone)]
pub enum TelemetryFrom {
    /// The dispatcher's `/metrics` (full URL) and every replica's, straight from the services.
    Scrape { dispatcher_metrics_url: String },
    /// A Prometheus server's HTTP API (base URL), with the tuning's PromQL.
    Prometheus { url: String },
}

impl TelemetryFrom {
    /// The source for `pool`, with the tuning's timeout (at most one interval).
    pub fn source(
        &self,
        pool: &ReplicaPool,
        settings: &ControllerSettings,
    ) -> anyhow::Result<AnySource> {
        let timeout = settings.tuning.prometheus_timeout.min(settings.interval);
        Ok(match self {
            TelemetryFrom::Scrape {
                dispatcher_metrics_url,
            } => AnySource::Scrape(
                ScrapeSource::new(
                    dispatcher_metrics_url.clone(),
                    InferenceTargets::Watch(pool.endpoints()),
                    timeout,
                )
                .map_err(anyhow::Error::msg)?,
            ),
            TelemetryFrom::Prometheus { url } => AnySource::Prometheus(
                PrometheusSource::new(url, settings.tuning.queries.clone(), timeout)
                    .map_err(anyhow::Error::msg)?,
            ),
        })
    }
}

/// The predictive forecaster's state in `path` (`--autoscaler-state`): restored at start, saved
/// every 10 s when something was learned and at stop; a state whose last observation is up to
/// an hour old continues (a demo is stopped and started again by hand).
pub fn state_file(path: &Path) -> Checkpointing {
    Checkpointing {
        store: StateStore::File(FileStore::new(path)),
        save_interval: Duration::from_secs(10),
        max_age: Duration::from_secs(3600),
    }
}

/// A running controller and its HTTP endpoints. Dropping it stops both.
pub struct LocalAutoscaler {
    handle: ControllerHandle,
    url: String,
    stop: CancellationToken,
    controller: Option<JoinHandle<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl LocalAutoscaler {
    /// Starts the controller on `pool` and serves its endpoints on `listener`.
    pub fn start<S>(
        source: S,
        pool: Arc<ReplicaPool>,
        settings: ControllerSettings,
        listener: TcpListener,
    ) -> anyhow::Result<Self>
    where
        S: TelemetrySource + 'static,
    {
        let handle = ControllerHandle::new().context("autoscaler metrics registry")?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let controller = tokio::spawn(autoscaler::run_controller(
            source,
            pool,
            settings,
            handle.clone(),
            stop.clone().cancelled_owned(),
        ));
        let app = autoscaler::app(autoscaler::AppState {
            handle: handle.clone(),
            access: autoscaler::ControlAccess::Open,
        });
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        Ok(Self {
            handle,
            url,
            stop,
            controller: Some(controller),
            server: Some(server),
        })
    }

    /// Base URL of `/metrics` and `/status`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The controller's metrics and last status.
    pub fn handle(&self) -> &ControllerHandle {
        &self.handle
    }

    /// Stops deciding, then stops serving (waiting at most `timeout` for each).
    pub async fn stop(mut self, timeout: Duration) {
        self.stop.cancel();
        if let Some(controller) = self.controller.take() {
            let _ = tokio::time::timeout(timeout, controller).await;
        }
        if let Some(server) = self.server.take() {
            match tokio::time::timeout(timeout, server).await {
                Ok(Ok(Err(err))) => {
                    tracing::warn!(%err, "autoscaler endpoints stopped with an error")
                }
                Err(_) => tracing::warn!("autoscaler endpoints did not stop in time"),
                _ => {}
            }
        }
    }
}

impl Drop for LocalAutoscaler {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(controller) = self.controller.take() {
            controller.abort();
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
