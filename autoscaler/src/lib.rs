//! A predictive autoscaler for the inference service, and a simulator that shows whether it
//! beats the Kubernetes HPA.
//!
//! Every interval the controller reads the arrival rate and queue (Prometheus, or the
//! dispatcher's `/metrics`), forecasts the rate at the cold-start horizon with Holt's method,
//! and sizes the inference Deployment with Erlang C so that P(queue wait > SLA) stays under a
//! target, before the load arrives. A circuit breaker keeps bad telemetry from scaling
//! anything down. The decision core is pure (time is a parameter) and shared, unchanged, by the
//! runtime controller and the discrete-event simulator. Entry points: [`run`] (what
//! `autoscaler serve` runs), [`run_with`] and [`run_controller`] (the local demo passes its own
//! target and source), [`simulate::run`] (what `autoscaler simulate` runs).
//!
//! # Layout
//! - [`config`]: flags and environment variables, validated into the settings below.
//! - [`state`]: what the HTTP handlers share ([`AppState`], [`ControlAccess`]).
//! - [`routes`]: the router and handlers (`/metrics`, `/healthz`, `/status`, `/pause`, `/resume`).
//! - [`server`]: the controller and the server side by side, and graceful shutdown.
//! - [`error`]: the HTTP errors, their codes and statuses.
//! - [`metrics`]: the controller's Prometheus metrics.
//! - [`tuning`]: the YAML tuning file, validated into [`Tuning`].
//! - [`queueing`]: Erlang B/C, P(wait > t), replicas for an SLA, stable for any k.
//! - [`forecast`]: Holt (damped) and additive Holt-Winters.
//! - [`checkpoint`]: the forecaster's state across restarts, in a file or a ConfigMap.
//! - [`decision`]: the predictive sizing rule and its stability controls.
//! - [`breaker`]: the telemetry circuit breaker.
//! - [`policy`]: `predictive`, `hpa` (the Kubernetes algorithm), `queue` (KEDA-style), `static:N`.
//! - [`telemetry`]: the Prometheus and direct-scrape sources.
//! - [`target`]: `ScaleTarget` and the Kubernetes Deployment implementation.
//! - [`controller`]: the control loop.
//! - [`simulate`]: workload traces, the discrete-event model, the comparison table and plots.

pub mod breaker;
pub mod checkpoint;
pub mod config;
pub mod controller;
pub mod decision;
pub mod error;
pub mod forecast;
pub mod metrics;
pub mod policy;
pub mod queueing;
pub mod routes;
pub mod server;
pub mod simulate;
pub mod state;
pub mod target;
pub mod telemetry;
pub mod tuning;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::{
    Cli, Command, ServeConfig, SimulateArgs, SourceKind, StateArgs, StateLocation, StateStoreKind,
    WorkloadArgs,
};
pub use controller::{ControllerHandle, ControllerSettings, Status, run_controller};
pub use policy::{Policy, PolicySpec};
pub use routes::app;
pub use server::run_with;
pub use simulate::{SimulateOptions, Simulation};
pub use state::{AppState, ControlAccess};
pub use target::{DeploymentTarget, ScaleTarget, TargetError};
pub use telemetry::{
    AnySource, InferenceTargets, PrometheusSource, ScrapeSource, Telemetry, TelemetryError,
    TelemetrySource,
};
pub use tuning::{ConfigError, Tuning, TuningError};

/// Runs `autoscaler serve`: the controller on the Deployment and telemetry source of `config`,
/// and the HTTP endpoints on `listener`, until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut settings = config.validate()?;
    let source = AnySource::from_config(&config, &settings.tuning)?;
    let client = DeploymentTarget::connect().await?;
    let namespace = config.namespace.as_deref();
    if let Some(location) = config.state.location(&config.deployment)? {
        let checkpointing = config.state.checkpointing(location, &client, namespace);
        if settings.policy == PolicySpec::Predictive {
            tracing::info!(store = %checkpointing.store.describe(), "forecaster state store");
            settings.checkpoint = Some(checkpointing);
        } else {
            tracing::info!(policy = %settings.policy, "no forecaster state to keep for this policy");
        }
    }
    let target = DeploymentTarget::new(client, namespace, &config.deployment);
    let access = ControlAccess::for_bind(
        listener.local_addr()?,
        config.auth_token.as_deref(),
        config.allow_unauthenticated,
    );
    if access.is_disabled() {
        tracing::warn!(
            "no AUTH_TOKEN on a non-loopback address: /status, /pause and /resume are disabled"
        );
    }
    run_with(listener, settings, access, source, target, shutdown).await
}
