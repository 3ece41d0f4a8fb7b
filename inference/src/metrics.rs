//! Prometheus metrics of one service instance, in its own registry.
//!
//! A per-instance registry (never the global default) lets a local pool run several replicas in
//! one process, each with its own `/metrics`. The names are part of the project's contract:
//! dashboards, alerts and the autoscaler read them. Utilisation is
//! `rate(inference_worker_busy_seconds_total) / inference_workers`.

use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Buckets of the whole-request histogram, in seconds: queueing under load pushes requests well
/// past the ~30-50 ms a model run takes.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
    10.0, 30.0,
];

/// Buckets of the per-stage histogram, in seconds: decode and preprocess take around a
/// millisecond, the model tens of milliseconds.
const STAGE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2,
    0.5, 1.0,
];

/// A pipeline stage timed by `inference_stage_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Preprocess,
    Model,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Preprocess => "preprocess",
            Stage::Model => "model",
        }
    }
}

/// The HTTP protocol a classification request came by: the `protocol` label of the request
/// metrics, so that a sum over it (what the autoscaler and the dashboards read) counts every
/// classification whichever route it came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /infer`: `protocol="harness"`.
    Infer,
    /// `POST /v2/models/{m}/infer` (and its versioned path): `protocol="v2"`.
    OpenInference,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Infer, Protocol::OpenInference];

    pub fn label(self) -> &'static str {
        match self {
            Protocol::Infer => "harness",
            Protocol::OpenInference => "v2",
        }
    }
}

/// The metrics of one instance.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    stage_duration: HistogramVec,
    /// Requests being processed by a worker.
    pub in_flight: IntGauge,
    /// Requests waiting for a worker.
    pub queue_depth: IntGauge,
    /// Size of the worker pool.
    pub workers: IntGauge,
    /// Sum over workers of the time spent processing requests.
    pub worker_busy_seconds: prometheus::Counter,
    model_info: IntGaugeVec,
    runtime_info: IntGaugeVec,
    ready: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric, plus the process collector, in a fresh registry.
    pub fn new() -> Self {
        Self::try_new().expect("metric definitions are static and valid")
    }

    fn try_new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        registry.register(Box::new(ProcessCollector::for_self()))?;
        let (requests, request_duration, stage_duration) = request_metrics(&registry)?;
        let (in_flight, queue_depth, workers, worker_busy_seconds) = pool_metrics(&registry)?;
        let model_info = IntGaugeVec::new(
            Opts::new("inference_model_info", "The model served; always 1."),
            &["model", "input_size"],
        )?;
        let runtime_info = IntGaugeVec::new(
            Opts::new(
                "inference_runtime_info",
                "The runtime that runs the model (tract or onnxruntime) and its version; always 1.",
            ),
            &["runtime", "version"],
        )?;
        let ready = IntGauge::new(
            "inference_ready",
            "1 once the model is loaded and warmed up, else 0.",
        )?;
        // Series exist from the start, so rate() has a baseline before the first request.
        for protocol in Protocol::ALL {
            requests.with_label_values(&[protocol.label(), "ok"]);
            request_duration.with_label_values(&[protocol.label()]);
        }
        for stage in [Stage::Decode, Stage::Preprocess, Stage::Model] {
            stage_duration.with_label_values(&[stage.label()]);
        }
        Ok(Self {
            model_info: register(&registry, model_info)?,
            runtime_info: register(&registry, runtime_info)?,
            ready: register(&registry, ready)?,
            registry,
            requests,
            request_duration,
            stage_duration,
            in_flight,
            queue_depth,
            workers,
            worker_busy_seconds,
        })
    }

    /// Counts one finished `/infer` request and its duration.
    pub fn observe_request(&self, outcome: &str, seconds: f64) {
        self.observe(Protocol::Infer, outcome, seconds);
    }

    /// Counts one finished classification request of `protocol` and its duration.
    pub fn observe(&self, protocol: Protocol, outcome: &str, seconds: f64) {
        let protocol = protocol.label();
        self.requests.with_label_values(&[protocol, outcome]).inc();
        self.request_duration
            .with_label_values(&[protocol])
            .observe(seconds);
    }

    /// Records the time of one pipeline stage.
    pub fn observe_stage(&self, stage: Stage, seconds: f64) {
        self.stage_duration
            .with_label_values(&[stage.label()])
            .observe(seconds);
    }

    /// Publishes the served model (`inference_model_info{model,input_size} 1`).
    pub fn set_model(&self, model: &str, input_size: u32) {
        self.model_info
            .with_label_values(&[model, &input_size.to_string()])
            .set(1);
    }

    /// Publishes the runtime (`inference_runtime_info{runtime,version} 1`), once the model is
    /// loaded.
    pub fn set_runtime(&self, runtime: &str, version: &str) {
        self.runtime_info
            .with_label_values(&[runtime, version])
            .set(1);
    }

    /// Marks the instance ready (model loaded and warmed up).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format 0.0.4 (what `/metrics` answers; tests read it).
    pub fn render(&self) -> String {
        harness_core::http::metrics_text(&self.registry).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The request-side metrics: outcomes, whole-request and per-stage durations.
fn request_metrics(
    registry: &Registry,
) -> prometheus::Result<(IntCounterVec, HistogramVec, HistogramVec)> {
    let requests = IntCounterVec::new(
        Opts::new(
            "inference_requests_total",
            "Classification requests by protocol (harness: POST /infer, v2: the Open Inference \
             Protocol) and outcome: ok or the error code.",
        ),
        &["protocol", "outcome"],
    )?;
    let request_duration = HistogramVec::new(
        HistogramOpts::new(
            "inference_request_duration_seconds",
            "Time to answer a classification request, queueing included, by protocol.",
        )
        .buckets(REQUEST_BUCKETS.to_vec()),
        &["protocol"],
    )?;
    let stage_duration = HistogramVec::new(
        HistogramOpts::new(
            "inference_stage_duration_seconds",
            "Time spent in one stage of the pipeline: decode, preprocess, model.",
        )
        .buckets(STAGE_BUCKETS.to_vec()),
        &["stage"],
    )?;
    Ok((
        register(registry, requests)?,
        register(registry, request_duration)?,
        register(registry, stage_duration)?,
    ))
}

/// The worker pool's gauges and busy-time counter (the pool updates them itself).
fn pool_metrics(
    registry: &Registry,
) -> prometheus::Result<(IntGauge, IntGauge, IntGauge, prometheus::Counter)> {
    let in_flight = IntGauge::new(
        "inference_in_flight",
        "Requests being processed by a worker.",
    )?;
    let queue_depth = IntGauge::new(
        "inference_queue_depth",
        "Requests waiting for a free worker.",
    )?;
    let workers = IntGauge::new("inference_workers", "Size of the worker pool.")?;
    let worker_busy_seconds = prometheus::Counter::new(
        "inference_worker_busy_seconds_total",
        "Sum over workers of the time spent processing requests.",
    )?;
    Ok((
        register(registry, in_flight)?,
        register(registry, queue_depth)?,
        register(registry, workers)?,
        register(registry, worker_busy_seconds)?,
    ))
}

/// Registers `metric` (a handle: the registry keeps a clone) and returns it.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> prometheus::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}
