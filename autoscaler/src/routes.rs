//! The router and handlers of `autoscaler serve`: `/metrics` and `/healthz` for anyone, and
//! the control endpoints `GET /status` (the last decision) and `POST /pause` / `POST /resume`
//! (keep deciding and reporting, stop scaling: for incidents and maintenance) for whom
//! [`ControlAccess`] lets in. Without a token they are open only on a loopback bind (or with
//! `--allow-unauthenticated`); elsewhere they answer 403 `control_disabled`.

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use harness_core::http::{handle_layer_error, panic_guard, trace_layer};
use tower::ServiceBuilder;

use crate::error::Error;
use crate::state::{AppState, ControlAccess};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONCURRENT_REQUESTS: usize = 64;
/// No endpoint takes a body.
const MAX_BODY_BYTES: usize = 1024;

/// The router.
pub fn app(state: AppState) -> Router {
    let control = Router::new()
        .route("/status", get(status))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(handle_layer_error))
        .load_shed()
        .concurrency_limit(MAX_CONCURRENT_REQUESTS)
        .timeout(REQUEST_TIMEOUT);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .merge(control)
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(limits)
        .layer(panic_guard())
        .layer(trace_layer())
        .with_state(state)
}

async fn require_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    match &state.access {
        ControlAccess::Open => {}
        ControlAccess::Disabled => return Error::ControlDisabled.into_response(),
        ControlAccess::Token(expected) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
                return Error::Unauthorized.into_response();
            }
        }
    }
    next.run(request).await
}

/// Compares without an early exit, so response time does not leak the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(state): State<AppState>) -> Result<Response, Error> {
    let text = state.handle.metrics().render().map_err(Error::Internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
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
