//! The HTTP handlers. Bodies are camelCase JSON; errors are `{"error":{"code","message"}}`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use harness_core::wire::{LatencyBatch, StoreLatencyResponse};
use serde::{Deserialize, Serialize};

use crate::config::parse_base_url;
use crate::error::Error;
use crate::pool::ImagePool;
use crate::report::write_report;
use crate::run::{RunOptions, execute, prepare};
use crate::schedule::Arrivals;
use crate::server::{AppState, Control};
use crate::stats::Stats;
use crate::store::{Progress, RunState};
use crate::workload::Workload;

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
    /// `uniform` or `poisson`.
    pub arrivals: Option<String>,
    pub seed: Option<u64>,
}

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

impl Control {
    /// Run options from the server's settings overridden by the request.
    async fn options_for(&self, request: RunRequest) -> Result<RunOptions, Error> {
        let args = &self.config.generator;
        let mut settings = args.settings()?;
        if let Some(url) = &request.dispatcher_url {
            settings.dispatcher_url =
                parse_base_url(url).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        }
        let seed = request.seed.unwrap_or(args.seed);
        let arrivals = match request.arrivals.as_deref() {
            Some(name) => Arrivals::parse(name, seed).ok_or_else(|| {
                Error::InvalidRequest(format!("arrivals must be uniform or poisson, got {name:?}"))
            })?,
            None => match settings.arrivals {
                Arrivals::Poisson { .. } => Arrivals::Poisson { seed },
                uniform => uniform,
            },
        };
        let workload = match request.workload {
            Some(WorkloadSpec::Rates(rates)) => Workload::from_numbers(&rates, "workload")?,
            Some(WorkloadSpec::Text(text)) => Workload::parse(&text, "workload")?,
            None => Workload::load(&args.workload)?,
        };
        let (pool, _) = ImagePool::load(args.images.clone(), args.resize).await?;
        let mut options = RunOptions::with_settings(workload, Arc::new(pool), args, settings);
        options.arrivals = arrivals;
        options.max_requests = request.max_images.or(args.max_images);
        Ok(options)
    }
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
    let options = control.options_for(request).await?;
    let prepared = prepare(options, &state.store, &state.metrics).await?;
    let started = {
        let ledger = crate::store::lock(&prepared.state.ledger);
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
    Json(state.store.store(&batch.into_vec(), &state.metrics))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn not_found(uri: Uri) -> Error {
    Error::NotFound(uri.path().to_owned())
}

pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}
