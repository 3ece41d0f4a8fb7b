//! A predictive autoscaler for the inference service, and a simulator that shows whether it
//! beats the Kubernetes HPA.
//!
//! Every interval the controller reads the arrival rate and queue (Prometheus, or the
//! dispatcher's `/metrics`), forecasts the rate at the cold-start horizon with Holt's method,
//! and sizes the inference Deployment with Erlang C so that P(queue wait > SLA) stays under a
//! target, before the load arrives. A circuit breaker keeps bad telemetry from scaling
//! anything down. The decision core is pure (time is a parameter) and shared, unchanged, by the
//! runtime controller and the discrete-event simulator. Entry points: [`run`] (what
//! `autoscaler serve` runs), [`run_controller`] (the local demo passes its own target and
//! source), [`simulate::run`] (what `autoscaler simulate` runs).
//!
//! # Layout
//! - [`queueing`]: Erlang B/C, P(wait > t), replicas for an SLA, stable for any k.
//! - [`forecast`]: Holt (damped) and additive Holt-Winters.
//! - [`decision`]: the predictive sizing rule and its stability controls.
//! - [`breaker`]: the telemetry circuit breaker.
//! - [`policy`]: `predictive`, `hpa` (the Kubernetes algorithm), `queue` (KEDA-style), `static:N`.
//! - [`config`]: the YAML tuning file; [`cli`]: flags and environment variables.
//! - [`telemetry`]: the Prometheus and direct-scrape sources.
//! - [`target`]: `ScaleTarget` and the Kubernetes Deployment implementation.
//! - [`controller`]: the control loop; [`server`]: its HTTP endpoints; [`metrics`]; [`error`].
//! - [`simulate`]: workload traces, the discrete-event model, reports and plots.

pub mod breaker;
pub mod cli;
pub mod config;
pub mod controller;
pub mod decision;
pub mod error;
pub mod forecast;
pub mod metrics;
pub mod policy;
pub mod queueing;
pub mod server;
pub mod simulate;
pub mod target;
pub mod telemetry;

use std::future::Future;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use cli::{Cli, Command, ServeConfig, SimulateArgs, SourceKind};
pub use config::{ConfigError, Tuning};
pub use controller::{ControllerHandle, ControllerSettings, Status, run_controller};
pub use policy::{Policy, PolicySpec};
pub use server::{AppState, ControlAccess, app};
pub use target::{DeploymentTarget, ScaleTarget, TargetError};
pub use telemetry::{
    InferenceTargets, PrometheusSource, ScrapeSource, Telemetry, TelemetryError, TelemetrySource,
};

/// Runs `autoscaler serve`: the controller on the Deployment and telemetry source of `config`,
/// and the HTTP endpoints on `listener`, until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = config.validate()?;
    let source = AnySource::from_config(&config, &settings.tuning)?;
    let client = DeploymentTarget::connect().await?;
    let target = DeploymentTarget::new(client, config.namespace.as_deref(), &config.deployment);
    let access = ControlAccess::for_bind(
        listener.local_addr()?,
        config.auth_token,
        config.allow_unauthenticated,
    );
    if access == ControlAccess::Disabled {
        tracing::warn!(
            "no AUTH_TOKEN on a non-loopback address: /status, /pause and /resume are disabled"
        );
    }
    run_with(listener, settings, access, source, target, shutdown).await
}

/// Like [`run`] with a source and target of the caller's (the demo's local pool).
pub async fn run_with<S, T>(
    listener: TcpListener,
    settings: ControllerSettings,
    access: impl Into<ControlAccess>,
    source: S,
    target: T,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    S: TelemetrySource + 'static,
    T: ScaleTarget + 'static,
{
    let handle = ControllerHandle::new().context("metrics registry")?;
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
    let access = access.into();
    axum::serve(listener, app(AppState { handle, access }))
        .with_graceful_shutdown(stopped(stop_rx))
        .await?;
    controller.await.context("controller task")?;
    Ok(())
}

/// The source `serve` builds from its flags.
#[derive(Debug)]
pub enum AnySource {
    Prometheus(PrometheusSource),
    Scrape(ScrapeSource),
}

impl AnySource {
    pub fn from_config(config: &ServeConfig, tuning: &Tuning) -> anyhow::Result<Self> {
        let timeout = tuning.prometheus_timeout;
        Ok(match config.source {
            SourceKind::Prometheus => AnySource::Prometheus(
                PrometheusSource::new(&config.prometheus_url, tuning.queries.clone(), timeout)
                    .map_err(|e| anyhow::anyhow!("--prometheus-url {e}"))?,
            ),
            SourceKind::Dispatcher => {
                let inference = if config.inference_metrics_urls.is_empty() {
                    InferenceTargets::None
                } else {
                    InferenceTargets::Static(config.inference_metrics_urls.clone())
                };
                AnySource::Scrape(
                    ScrapeSource::new(config.dispatcher_metrics_url.clone(), inference, timeout)
                        .map_err(anyhow::Error::msg)?,
                )
            }
        })
    }
}

impl TelemetrySource for AnySource {
    fn name(&self) -> &'static str {
        match self {
            AnySource::Prometheus(s) => s.name(),
            AnySource::Scrape(s) => s.name(),
        }
    }

    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        match self {
            AnySource::Prometheus(s) => s.read(now).await,
            AnySource::Scrape(s) => s.read(now).await,
        }
    }
}
