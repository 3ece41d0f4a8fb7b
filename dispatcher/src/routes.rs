//! The HTTP API: `POST /enqueue`, `GET /records` (the pull path of latency records),
//! `GET /stats`, `/metrics`, `/healthz`, `/readyz`.
//!
//! `/enqueue` stays cheap so the dispatcher can take images about as fast as a bare handler:
//! one JSON parse that borrows the image from the body, one SIMD pass over the base64 to
//! validate it (never decoded here), one push under a short lock. Every refusal is an [`Error`] with a stable code, counted by reason.

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use harness_core::http::{
    Endpoint, Index, handle_layer_error, method_not_allowed, metrics_response, not_found,
    panic_guard, trace_layer,
};
use harness_core::wire::{EnqueueResponse, now_unix_millis};
use serde::Deserialize;
use tower::ServiceBuilder;

use crate::enqueue;
use crate::error::Error;
use crate::queue::{Item, PushError};
use crate::state::AppState;

/// Longest client-chosen item id: ids travel back in every record.
pub const MAX_ID_BYTES: usize = 256;
/// Whole-request timeout of the HTTP server (a client uploading a body slower than this is cut).
const SERVER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `GET /`: what `curl dispatcher:8080/` shows.
const INDEX: Index = Index {
    service: "dispatcher",
    version: env!("CARGO_PKG_VERSION"),
    endpoints: &[
        Endpoint {
            method: "POST",
            path: "/enqueue",
            about: "queue an image: {\"image\":\"<base64>\",\"id\":\"optional\"}",
        },
        Endpoint {
            method: "GET",
            path: "/records",
            about: "latency records of a run, long-poll: ?runId=…&after=<cursor>&wait=10s&limit=1000",
        },
        Endpoint {
            method: "GET",
            path: "/stats",
            about: "queue, totals by outcome, endpoints",
        },
        Endpoint::METRICS,
        Endpoint::HEALTHZ,
        Endpoint {
            method: "GET",
            path: "/readyz",
            about: "readiness: accepting, with a ready inference endpoint",
        },
    ],
};

/// The router, with body limit, timeout, concurrency limit with load shedding, panic catching
/// and request tracing.
pub fn app(state: AppState) -> Router {
    let settings = state.settings();
    let middleware = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(handle_layer_error))
        .load_shed()
        .concurrency_limit(settings.max_concurrent_requests)
        .timeout(SERVER_REQUEST_TIMEOUT);
    Router::new()
        .route("/enqueue", post(enqueue))
        .route("/records", get(records))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/health", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(|| async { INDEX }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(middleware)
        .layer(panic_guard())
        .layer(trace_layer())
        .with_state(state)
}

async fn enqueue(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match accept(&state, &headers, body) {
        Ok(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        Err(err) => {
            state.metrics().reject(err.code());
            err.into_response()
        }
    }
}

/// Validates and queues one image.
fn accept(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<EnqueueResponse, Error> {
    if !is_json(headers) {
        return Err(Error::UnsupportedMediaType);
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::BodyTooLarge {
            limit: state.settings().max_body_bytes,
        },
        _ => Error::BadBody(rejection),
    })?;
    let parsed = enqueue::parse(&body)?;
    let id = match parsed.id {
        Some(id) if id.is_empty() || id.len() > MAX_ID_BYTES => {
            return Err(Error::InvalidId { max: MAX_ID_BYTES });
        }
        Some(id) => id,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let item = Item {
        id: id.clone(),
        image: parsed.image,
        enqueued_at: tokio::time::Instant::now(),
        enqueued_at_ms: now_unix_millis(),
    };
    let queue_length = state.queue().push(item).map_err(|e| refusal(state, e))?;
    state.metrics().enqueued.inc();
    Ok(EnqueueResponse {
        id,
        queue_length,
        instance_id: state.instance_id().to_owned(),
    })
}

/// A missing content type is accepted (curl without `-H`); a declared non-JSON one is not.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

fn refusal(state: &AppState, err: PushError) -> Error {
    // A slot frees every 1/rate seconds while the drain runs: retry about then.
    let retry_after_secs = (1.0 / state.settings().drain_rate).ceil().clamp(1.0, 60.0) as u32;
    match err {
        PushError::Full { length } => Error::QueueFull {
            length,
            retry_after_secs,
        },
        PushError::BytesFull { bytes } => Error::QueueBytesFull {
            bytes,
            retry_after_secs,
        },
        PushError::Closed => Error::ShuttingDown,
    }
}

/// `GET /records` query. Unknown parameters are refused, so a typo is not silently ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RecordsQuery {
    run_id: String,
    /// The `cursor` of the previous page: acknowledges it.
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    /// How long to wait for a record when none is there (`0s` to `20s`).
    wait: Option<String>,
}

/// Longest `wait` of `GET /records`, well inside the server's request timeout.
const MAX_RECORDS_WAIT: Duration = Duration::from_secs(20);
const DEFAULT_RECORDS_LIMIT: usize = 1000;
const MAX_RECORDS_LIMIT: usize = 10_000;

/// The pull path: the records of one run, waiting up to `wait` for the first one.
async fn records(
    State(state): State<AppState>,
    query: Result<Query<RecordsQuery>, QueryRejection>,
) -> Response {
    let invalid = |reason: String| Error::InvalidRecordsQuery { reason }.into_response();
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return invalid(rejection.body_text()),
    };
    if query.run_id.is_empty() {
        return invalid("runId must not be empty".into());
    }
    let limit = query.limit.unwrap_or(DEFAULT_RECORDS_LIMIT);
    if !(1..=MAX_RECORDS_LIMIT).contains(&limit) {
        return invalid(format!("limit must be 1 to {MAX_RECORDS_LIMIT}"));
    }
    let wait = match query.wait.as_deref().map(humantime::parse_duration) {
        None => Duration::ZERO,
        Some(Ok(wait)) if wait <= MAX_RECORDS_WAIT => wait,
        Some(Ok(_)) => return invalid(format!("wait must be at most {MAX_RECORDS_WAIT:?}")),
        Some(Err(e)) => return invalid(format!("wait: {e} (e.g. 10s or 500ms)")),
    };
    let mut page = state
        .outbox()
        .pull_wait(&query.run_id, query.after, limit, wait)
        .await;
    page.instance_id = state.instance_id().to_owned();
    Json(page).into_response()
}

async fn stats(State(state): State<AppState>) -> Response {
    Json(state.stats()).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(state.metrics().registry())
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready while accepting and at least one inference endpoint is ready; with
/// `--ready-without-endpoints`, while accepting (inference may be scaled to zero: the queue
/// holds the items until a replica is ready).
async fn readyz(State(state): State<AppState>) -> Response {
    if !state.queue().is_accepting() {
        return Error::ShuttingDown.into_response();
    }
    match state.balancer().ready_count() {
        0 if state.settings().ready_without_endpoints => {
            "ready: no endpoint ready, queueing until one is\n".into_response()
        }
        0 => Error::NoReadyEndpoint.into_response(),
        n => format!("ready: {n} endpoint(s)\n").into_response(),
    }
}
