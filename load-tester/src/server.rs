//! The HTTP server: `load-tester serve` (control API + receiver) and the receiver alone that
//! the CLI and the library embed.
//!
//! Control endpoints (`POST /runLoadTest`, `POST /generateReport`) take an optional bearer
//! token. Without one, [`run`] refuses to listen on anything but a loopback address unless
//! `--allow-unauthenticated` says that is intended: anyone who can reach the port could make
//! this process send traffic.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use harness_core::http::{handle_layer_error, panic_guard, trace_layer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;

use crate::config::ServeConfig;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::routes;
use crate::store::RunStore;

/// Defaults of the embedded receiver (the CLI and library have no flags for these).
const RECEIVER_MAX_BODY: usize = 16 * 1024 * 1024;
const RECEIVER_TIMEOUT: Duration = Duration::from_secs(30);
const RECEIVER_CONCURRENCY: usize = 256;

/// What the control endpoints need beyond the receiver.
pub(crate) struct Control {
    pub config: ServeConfig,
    /// Serialises run starts so that two requests cannot both pass the "no active run" check.
    pub start_lock: tokio::sync::Mutex<()>,
    /// Cancelled at shutdown: stops every run's sending.
    pub shutdown: CancellationToken,
    /// Run tasks, awaited at shutdown so their reports can still be generated.
    pub tasks: TaskTracker,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<RunStore>,
    pub metrics: Metrics,
    pub(crate) control: Option<Arc<Control>>,
}

impl AppState {
    /// State of a receiver-only server (no control endpoints).
    pub fn receiver(store: Arc<RunStore>, metrics: Metrics) -> Self {
        Self {
            store,
            metrics,
            control: None,
        }
    }

    pub(crate) fn control(&self) -> Result<&Arc<Control>, Error> {
        self.control
            .as_ref()
            .ok_or_else(|| Error::NotFound("control endpoints are not served here".into()))
    }
}

/// The router: receiver routes always, control routes when `state` has them.
pub fn app(state: AppState) -> Router {
    let (max_body, timeout, concurrency) = match &state.control {
        Some(c) => (
            c.config.max_body_bytes,
            c.config.http_timeout,
            c.config.max_concurrent_requests,
        ),
        None => (RECEIVER_MAX_BODY, RECEIVER_TIMEOUT, RECEIVER_CONCURRENCY),
    };
    let mut router = Router::new()
        .route("/storeLatency", post(routes::store_latency))
        .route("/runs/current", get(routes::current_run))
        .route("/runs/{id}", get(routes::run_progress))
        .route("/metrics", get(routes::metrics))
        .route("/healthz", get(routes::healthz));
    if state.control.is_some() {
        let control = Router::new()
            .route("/runLoadTest", post(routes::start_run))
            .route("/generateReport", post(routes::generate_report))
            .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
        router = router.merge(control);
    }
    router
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(
            ServiceBuilder::new()
                // Overload: a fast 503 with Retry-After instead of an unbounded backlog.
                .layer(HandleErrorLayer::new(handle_layer_error))
                .load_shed()
                .concurrency_limit(concurrency)
                .timeout(timeout),
        )
        .layer(panic_guard())
        .layer(trace_layer())
        .with_state(state)
}

/// The `serve` router over a fresh store, without a socket (handler tests).
pub fn test_app(config: ServeConfig) -> Router {
    app(AppState {
        store: Arc::new(RunStore::new()),
        metrics: Metrics::new(),
        control: Some(Arc::new(Control::new(config))),
    })
}

impl Control {
    fn new(config: ServeConfig) -> Self {
        Self {
            config,
            start_lock: tokio::sync::Mutex::new(()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}

/// Bearer-token check of the control endpoints (no-op without a configured token).
async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let expected = state.control()?.config.auth_token.as_deref();
    if let Some(expected) = expected {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(Error::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    if config.auth_token.is_none() && !addr.ip().is_loopback() && !config.allow_unauthenticated {
        anyhow::bail!(
            "refusing to serve the control endpoints on {addr} without a token: set \
             --auth-token/AUTH_TOKEN, bind a loopback address, or pass \
             --allow-unauthenticated/ALLOW_UNAUTHENTICATED=true"
        );
    }
    if config.auth_token.is_none() {
        tracing::warn!(%addr, "control endpoints are unauthenticated");
    }
    let control = Arc::new(Control::new(config));
    let state = AppState {
        store: Arc::new(RunStore::new()),
        metrics: Metrics::new(),
        control: Some(control.clone()),
    };
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

/// Serves only the receiver (the CLI and [`crate::run_load_test`]).
pub async fn serve_receiver(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
