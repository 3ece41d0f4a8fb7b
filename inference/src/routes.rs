//! The HTTP surface: `POST /infer`, `GET /metrics`, `GET /healthz`, `GET /readyz`, and the v2
//! routes of `oip` (registered here, served there).
//!
//! `/infer` is wrapped, outermost first, in: outcome metrics, the error mapping of the tower
//! layers below, a request timeout, load shedding and a concurrency limit. `/metrics` and the
//! probes stay outside those limits: an overloaded replica must still be observable, and must
//! not be killed by its liveness probe. Every response that is not a success, axum's own 404 and
//! 405 included, carries the project's error body; on `/v2` paths, `oip::error_shape` turns it
//! into the protocol's `{"error":"message"}`. `POST /v2/models/{m}/infer` has the same layers as
//! `/infer`, with limits and metrics of its own.

use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use axum::{BoxError, Json, Router};
use harness_core::api_error::ErrorDetail;
use harness_core::http::{
    Endpoint, Index, LayerError, method_not_allowed, metrics_response, not_found, panic_guard,
    trace_layer,
};
use harness_core::wire::{InferResponse, Outcome};
use serde_json::json;
use tower::ServiceBuilder;

use crate::classify::classify;
use crate::error::Error;
use crate::metrics::Protocol;
use crate::oip;
use crate::request::InferBody;
use crate::state::AppState;

/// `GET /`: what `curl inference:8000/` shows.
const INDEX: Index = Index {
    service: "inference",
    version: env!("CARGO_PKG_VERSION"),
    endpoints: &[
        Endpoint {
            method: "POST",
            path: "/infer",
            about: "classify an image: {\"image\":\"<base64>\"} or a raw image/* body",
        },
        Endpoint::METRICS,
        Endpoint::HEALTHZ,
        Endpoint {
            method: "GET",
            path: "/readyz",
            about: "readiness: 200 once the model is loaded and warmed up",
        },
        Endpoint {
            method: "GET",
            path: "/v2",
            about: "Open Inference Protocol (KServe v2): server name, version, extensions",
        },
        Endpoint {
            method: "GET",
            path: "/v2/health/live",
            about: "v2 liveness",
        },
        Endpoint {
            method: "GET",
            path: "/v2/health/ready",
            about: "v2 readiness: 200 once the model is loaded and warmed up",
        },
        Endpoint {
            method: "GET",
            path: "/v2/models/{model}",
            about: "v2 model metadata: inputs and outputs (each model path also under /versions/1)",
        },
        Endpoint {
            method: "GET",
            path: "/v2/models/{model}/ready",
            about: "v2 model readiness",
        },
        Endpoint {
            method: "GET",
            path: "/v2/models/{model}/config",
            about: "the model configuration in Triton's form (max_batch_size, dims)",
        },
        Endpoint {
            method: "POST",
            path: "/v2/models/{model}/infer",
            about: "v2 inference: `image` BYTES [N] or the preprocessed input; JSON, base64 or binary",
        },
    ],
};

/// The service's router, ready to serve (tests call it with `oneshot`).
pub fn app(state: AppState) -> Router {
    let infer_route = limited(&state, Protocol::Infer, post(infer));
    let v2_infer_route = limited(&state, Protocol::OpenInference, post(oip::infer::infer));
    Router::new()
        .route("/infer", infer_route)
        .merge(oip::router(v2_infer_route))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/health", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(|| async { INDEX }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes()))
        .layer(middleware::from_fn(oip::error_shape))
        .layer(panic_guard())
        .layer(trace_layer())
        .with_state(state)
}

/// A classification route wrapped, outermost first, in: outcome metrics of its `protocol`, the
/// error mapping of the tower layers below, a request timeout, load shedding and a concurrency
/// limit (one limit per route).
fn limited(
    state: &AppState,
    protocol: Protocol,
    route: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    let timeout = state.request_timeout();
    route.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(
                (state.clone(), protocol),
                record_outcome,
            ))
            .layer(HandleErrorLayer::new(move |err: BoxError| async move {
                tower_error(err, timeout)
            }))
            .timeout(timeout)
            .load_shed()
            .concurrency_limit(state.concurrency_limit()),
    )
}

async fn infer(
    State(state): State<AppState>,
    body: InferBody,
) -> Result<Json<InferResponse>, Error> {
    Ok(Json(classify(&state, body).await?))
}

/// Counts every classification response by protocol and outcome (`ok` or the error code) and
/// times it.
async fn record_outcome(
    State((state, protocol)): State<(AppState, Protocol)>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let outcome = match response.extensions().get::<ErrorDetail>() {
        Some(detail) => detail.code(),
        None if response.status().is_success() => Outcome::Ok.as_str(),
        None => "unknown_error",
    };
    state
        .metrics()
        .observe(protocol, outcome, started.elapsed().as_secs_f64());
    response
}

/// Maps the errors of the tower layers around `/infer` into the service's errors.
fn tower_error(err: BoxError, timeout: Duration) -> Error {
    match LayerError::classify(err) {
        LayerError::Timeout => Error::Timeout(timeout),
        LayerError::Overloaded => Error::Overloaded,
        LayerError::Other(detail) => Error::Internal(format!("middleware: {detail}")),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(state.metrics().registry())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Error> {
    let classifier = state.classifier().ok_or(Error::NotReady)?;
    Ok(Json(json!({
        "status": "ready",
        "model": classifier.name(),
        "workers": state.pool().workers().get(),
    })))
}
