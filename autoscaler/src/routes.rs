//! The router and handlers of `autoscaler serve`: `/metrics` and `/healthz` for anyone, and
//! the control endpoints `GET /status` (the last decision) and `POST /pause` / `POST /resume`
//! (keep deciding and reporting, stop scaling: for incidents and maintenance) for whom
//! [`ControlAccess`](crate::ControlAccess) lets in. Without a token they are open only on a loopback bind (or with
//! `--allow-unauthenticated`); elsewhere they answer 403 `control_disabled`.

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use harness_core::auth::require_control_access;
use harness_core::http::{
    Endpoint, Index, handle_layer_error, method_not_allowed, metrics_response, not_found,
    panic_guard, trace_layer,
};
use tower::ServiceBuilder;

use crate::error::Error;
use crate::state::AppState;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONCURRENT_REQUESTS: usize = 64;
/// No endpoint takes a body.
const MAX_BODY_BYTES: usize = 1024;

/// `GET /`: what `curl autoscaler:8090/` shows.
const INDEX: Index = Index {
    service: "autoscaler",
    version: env!("CARGO_PKG_VERSION"),
    endpoints: &[
        Endpoint {
            method: "GET",
            path: "/status",
            about: "the last decision, forecast and breaker state (bearer token)",
        },
        Endpoint {
            method: "POST",
            path: "/pause",
            about: "keep deciding, stop scaling (bearer token)",
        },
        Endpoint {
            method: "POST",
            path: "/resume",
            about: "scale again (bearer token)",
        },
        Endpoint::METRICS,
        Endpoint::HEALTHZ,
    ],
};

/// The router.
pub fn app(state: AppState) -> Router {
    let control = Router::new()
        .route("/status", get(status))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route_layer(middleware::from_fn_with_state(
            state.access.clone(),
            require_control_access,
        ));
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(handle_layer_error))
        .load_shed()
        .concurrency_limit(MAX_CONCURRENT_REQUESTS)
        .timeout(REQUEST_TIMEOUT);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/health", get(|| async { "ok" }))
        .route("/", get(|| async { INDEX }))
        .merge(control)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(limits)
        .layer(panic_guard())
        .layer(trace_layer())
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(state.handle.metrics().registry())
}

async fn status(State(state): State<AppState>) -> Result<Response, Error> {
    let status = state.handle.status().ok_or(Error::NoStatusYet)?;
    Ok(Json(status).into_response())
}

async fn pause(State(state): State<AppState>) -> Response {
    state.handle.set_paused(true);
    tracing::warn!("scaling paused by API request");
    (StatusCode::OK, Json(serde_json::json!({ "paused": true }))).into_response()
}

async fn resume(State(state): State<AppState>) -> Response {
    state.handle.set_paused(false);
    tracing::info!("scaling resumed by API request");
    (StatusCode::OK, Json(serde_json::json!({ "paused": false }))).into_response()
}
