//! The router and its handlers. Bodies are camelCase JSON; errors are
//! `{"error":{"code","message"}}`.
//!
//! Control endpoints (`POST /runLoadTest`, `POST /generateReport`) take an optional bearer
//! token; `server::run` decides whether serving them without one is allowed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, State};
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
use harness_core::wire::{LatencyBatch, StoreLatencyResponse};
use serde::{Deserialize, Deserializer, Serialize};
use tower::ServiceBuilder;

use crate::base_url::parse_base_url;
use crate::delivery::Delivery;
use crate::error::Error;
use crate::image_pool::ImagePool;
use crate::report::write_report;
use crate::run::{RunOptions, execute, prepare};
use crate::schedule::{ArrivalProcess, UnknownArrivals};
use crate::state::{AppState, Control};
use crate::stats::Stats;
use crate::store::{Progress, RunState};
use crate::target::{TargetKind, V2Bytes};
use crate::workload::Workload;

/// Defaults of the embedded receiver (the CLI and library have no flags for these).
const RECEIVER_MAX_BODY: usize = 16 * 1024 * 1024;
const RECEIVER_TIMEOUT: Duration = Duration::from_secs(30);
const RECEIVER_CONCURRENCY: usize = 256;

/// `GET /`: what `curl load-tester:3003/` shows. The control endpoints need the bearer token
/// and are served by `load-tester serve` only.
const INDEX: Index = Index {
    service: "load-tester",
    version: env!("CARGO_PKG_VERSION"),
    endpoints: &[
        Endpoint {
            method: "POST",
            path: "/runLoadTest",
            about: "start a run (bearer token; serve only)",
        },
        Endpoint {
            method: "POST",
            path: "/generateReport",
            about: "write a run's report (bearer token; serve only)",
        },
        Endpoint {
            method: "GET",
            path: "/runs/current",
            about: "progress of the active run",
        },
        Endpoint {
            method: "GET",
            path: "/runs/{id}",
            about: "progress of a run",
        },
        Endpoint {
            method: "POST",
            path: "/storeLatency",
            about: "latency records from the dispatcher",
        },
        Endpoint::METRICS,
        Endpoint::HEALTHZ,
    ],
};

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
        .route("/storeLatency", post(store_latency))
        .route("/runs/current", get(current_run))
        .route("/runs/{id}", get(run_progress))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/health", get(healthz))
        .route("/", get(|| async { INDEX }));
    if let Some(control) = &state.control {
        let control = Router::new()
            .route("/runLoadTest", post(start_run))
            .route("/generateReport", post(generate_report))
            .route_layer(middleware::from_fn_with_state(
                control.access.clone(),
                require_control_access,
            ));
        router = router.merge(control);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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

/// `axum::Json` whose rejections (bad JSON, wrong content type, body too large) come out in
/// the project's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct AppJson<T>(pub T);

/// `axum::extract::Path` whose rejection (a segment that is not UTF-8 once percent-decoded)
/// comes out in the project's error shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct AppPath<T>(pub T);

/// `POST /runLoadTest` body; every field but `maxImages` falls back to the server's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    pub max_images: Option<u64>,
    /// Rates as a JSON array, or the text of a workload file.
    pub workload: Option<WorkloadSpec>,
    pub dispatcher_url: Option<String>,
    /// `uniform` or `poisson`, in any case. An unknown name is kept rather than refused by
    /// serde, so that it is answered 400 `invalid_request` (serde's refusal would be a 422
    /// `invalid_json`).
    #[serde(default, deserialize_with = "requested_arrivals")]
    pub arrivals: Option<Result<ArrivalProcess, UnknownArrivals>>,
    pub seed: Option<u64>,
    /// `dispatcher`, `infer` or `v2` (the server's `--target` when absent).
    pub target: Option<TargetKind>,
    /// Base URL of the target (`--url`).
    pub url: Option<String>,
    /// The model of a v2 target (`--model-name`).
    pub model_name: Option<String>,
    /// `binary` or `base64` (`--v2-bytes`).
    pub v2_bytes: Option<V2Bytes>,
}

/// The `arrivals` field: a string (or null) read as an arrival process when it names one.
fn requested_arrivals<'de, D>(
    deserializer: D,
) -> Result<Option<Result<ArrivalProcess, UnknownArrivals>>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(deserializer)?.map(|name| name.parse()))
}

/// The `workload` field of `POST /runLoadTest`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum WorkloadSpec {
    Rates(Vec<f64>),
    Text(String),
}

/// `POST /runLoadTest` 202 body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStarted {
    pub run_id: String,
    pub planned: u64,
    pub seconds: u64,
}

/// `POST /generateReport` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRequest {
    /// Requests the caller expects; `missing` counts against it. Default: requests sent.
    pub total_requests: Option<u64>,
    /// Default: the most recent run.
    pub run_id: Option<String>,
}

/// `POST /generateReport` 200 body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportWritten {
    pub run_id: String,
    pub report_dir: PathBuf,
    pub report_html: PathBuf,
    pub stats_json: PathBuf,
    pub timeline_csv: PathBuf,
    pub stats: Stats,
}

/// Run options from the server's settings overridden by the request.
async fn run_options(control: &Control, request: RunRequest) -> Result<RunOptions, Error> {
    let args = &control.config.generator;
    let mut settings = args.settings()?;
    if let Some(url) = &request.dispatcher_url {
        settings.dispatcher_url = parse_base_url(url).map_err(Error::DispatcherUrl)?;
    }
    let targeted = request.target.is_some()
        || request.url.is_some()
        || request.model_name.is_some()
        || request.v2_bytes.is_some();
    if targeted {
        let mut target_args = args.clone();
        target_args.target = request.target.unwrap_or(args.target);
        target_args.url = request.url.or(target_args.url);
        target_args.model_name = request.model_name.or(target_args.model_name);
        target_args.v2_bytes = request.v2_bytes.unwrap_or(args.v2_bytes);
        let url = target_args.url.as_deref().filter(|u| !u.trim().is_empty());
        if let (TargetKind::Dispatcher, Some(url)) = (target_args.target, url) {
            settings.dispatcher_url = parse_base_url(url).map_err(Error::DispatcherUrl)?;
        }
        settings.direct = target_args
            .direct_target(url)
            .map_err(|err| Error::InvalidTarget(err.to_string()))?;
    }
    let seed = request.seed.unwrap_or(args.seed);
    let process = match request.arrivals {
        Some(requested) => requested?,
        None => settings.arrivals.process(),
    };
    let workload = match request.workload {
        Some(WorkloadSpec::Rates(rates)) => Workload::from_numbers(&rates, "workload")?,
        Some(WorkloadSpec::Text(text)) => Workload::parse(&text, "workload")?,
        None => Workload::load(&args.workload)?,
    };
    let (pool, _) = ImagePool::load(args.images.clone(), args.resize).await?;
    let mut options = RunOptions::with_settings(workload, Arc::new(pool), args, settings);
    options.arrivals = process.with_seed(seed);
    options.max_requests = request.max_images.or(args.max_images);
    Ok(options)
}

/// `POST /runLoadTest`: 202 with the run id, 409 while another run is active.
pub async fn start_run(
    State(state): State<AppState>,
    AppJson(request): AppJson<RunRequest>,
) -> Result<impl IntoResponse, Error> {
    let control = state.control()?.clone();
    let _starting = control.start_lock.lock().await;
    if let Some(active) = state.store.active() {
        return Err(Error::RunActive(active.id().to_owned()));
    }
    let options = run_options(&control, request).await?;
    let prepared = prepare(options, &state.store, &state.metrics).await?;
    let started = {
        let ledger = harness_core::sync::lock(&prepared.state.ledger);
        RunStarted {
            run_id: prepared.state.id().to_owned(),
            planned: ledger.plan().total(),
            seconds: ledger.plan().seconds() as u64,
        }
    };
    let metrics = state.metrics.clone();
    let cancel = control.shutdown.child_token();
    control.tasks.spawn(async move {
        execute(prepared, &metrics, cancel).await;
    });
    Ok((StatusCode::ACCEPTED, Json(started)))
}

fn find_run(state: &AppState, run_id: Option<&str>) -> Result<Arc<RunState>, Error> {
    match run_id {
        Some(id) => state
            .store
            .get(id)
            .ok_or_else(|| Error::RunNotFound(id.to_owned())),
        None => state.store.latest().ok_or(Error::NoRun),
    }
}

/// `GET /runs/current`: the active run, else the most recent one.
pub async fn current_run(State(state): State<AppState>) -> Result<Json<Progress>, Error> {
    let run = state
        .store
        .active()
        .map_or_else(|| find_run(&state, None), Ok)?;
    Ok(Json(run.progress()))
}

/// `GET /runs/{id}`.
pub async fn run_progress(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
) -> Result<Json<Progress>, Error> {
    Ok(Json(find_run(&state, Some(&id))?.progress()))
}

/// `POST /generateReport`: writes `<reportsDir>/<runId>/` and answers with its stats.
pub async fn generate_report(
    State(state): State<AppState>,
    AppJson(request): AppJson<ReportRequest>,
) -> Result<Json<ReportWritten>, Error> {
    let control = state.control()?;
    let run = find_run(&state, request.run_id.as_deref())?;
    let reports_dir = &control.config.generator.reports_dir;
    let (stats, files) = write_report(&run, request.total_requests, reports_dir).await?;
    Ok(Json(ReportWritten {
        run_id: stats.run_id.clone(),
        report_dir: files.dir,
        report_html: files.html,
        stats_json: files.stats_json,
        timeline_csv: files.timeline_csv,
        stats,
    }))
}

/// `POST /storeLatency`: one record or an array.
pub async fn store_latency(
    State(state): State<AppState>,
    AppJson(batch): AppJson<LatencyBatch>,
) -> Json<StoreLatencyResponse> {
    let records = batch.into_vec();
    Json(
        state
            .store
            .store_journaled(&records, Delivery::Push, &state.metrics)
            .await,
    )
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(state.metrics.registry())
}

pub async fn healthz() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_fields_are_typed() {
        let r: RunRequest = serde_json::from_str(
            r#"{"target":"v2","url":"http://m:8080","modelName":"efficientnet","v2Bytes":"base64"}"#,
        )
        .unwrap();
        assert_eq!(r.target, Some(TargetKind::V2));
        assert_eq!(r.v2_bytes, Some(V2Bytes::Base64));
        assert_eq!(r.model_name.as_deref(), Some("efficientnet"));
        assert!(serde_json::from_str::<RunRequest>(r#"{"target":"grpc"}"#).is_err());
    }

    #[test]
    fn arrivals_are_typed_and_unknown_names_kept() {
        let parse = |body: &str| serde_json::from_str::<RunRequest>(body).map(|r| r.arrivals);
        assert_eq!(
            parse(r#"{"arrivals":"Poisson"}"#).unwrap(),
            Some(Ok(ArrivalProcess::Poisson))
        );
        assert_eq!(parse(r#"{"arrivals":null}"#).unwrap(), None);
        assert_eq!(parse("{}").unwrap(), None);
        let unknown = parse(r#"{"arrivals":"bursty"}"#)
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            Error::from(unknown).to_string(),
            "invalid request: arrivals must be uniform or poisson, got \"bursty\""
        );
        assert!(parse(r#"{"arrivals":5}"#).is_err());
    }
}
