//! The HTTP side of `autoscaler serve`: `/metrics` and `/healthz` for anyone, and the control
//! endpoints `GET /status` (the last decision) and `POST /pause` / `POST /resume` (keep
//! deciding and reporting, stop scaling: for incidents and maintenance) for whom
//! [`ControlAccess`] lets in. Without a token they are open only on a loopback bind (or with
//! `--allow-unauthenticated`); elsewhere they answer 403 `control_disabled`.

use std::net::SocketAddr;
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

use crate::controller::ControllerHandle;
use crate::error::Error;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONCURRENT_REQUESTS: usize = 64;
/// No endpoint takes a body.
const MAX_BODY_BYTES: usize = 1024;

/// State of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub handle: ControllerHandle,
    /// Who may call `/status`, `/pause` and `/resume`.
    pub access: ControlAccess,
}

/// Who may call the control endpoints.
#[derive(Clone, PartialEq, Eq)]
pub enum ControlAccess {
    /// Anyone who reaches the port.
    Open,
    /// Callers with `Authorization: Bearer <token>`.
    Token(String),
    /// Nobody: 403 `control_disabled`.
    Disabled,
}

impl ControlAccess {
    /// What `serve` grants: the token when one is set; otherwise open on a loopback bind or
    /// when `allow_unauthenticated`, and disabled anywhere else, since `/pause` stops scaling.
    pub fn for_bind(bind: SocketAddr, token: Option<String>, allow_unauthenticated: bool) -> Self {
        match token {
            Some(token) => ControlAccess::Token(token),
            None if bind.ip().is_loopback() || allow_unauthenticated => ControlAccess::Open,
            None => ControlAccess::Disabled,
        }
    }
}

/// A library caller's choice: a token, or open.
impl From<Option<String>> for ControlAccess {
    fn from(token: Option<String>) -> Self {
        token.map_or(ControlAccess::Open, ControlAccess::Token)
    }
}

/// Never prints the token.
impl std::fmt::Debug for ControlAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ControlAccess::Open => "Open",
            ControlAccess::Token(_) => "Token(<redacted>)",
            ControlAccess::Disabled => "Disabled",
        })
    }
}

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
    let text = state
        .handle
        .metrics()
        .render()
        .map_err(|e| Error::Internal(e.to_string()))?;
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
