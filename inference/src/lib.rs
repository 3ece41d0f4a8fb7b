//! An HTTP image classifier on tract or onnxruntime: `POST /infer` takes a photo (base64 JSON or
//! the raw file) and answers the top-k ImageNet classes with their probabilities and where the
//! time went. The same model is also served over the Open Inference Protocol (`/v2/...`).
//!
//! The model is loaded, optimised and warmed up once; `/readyz` turns 200 only then. Every
//! CPU-bound step (body parsing, image decoding, resizing, the model) runs on a fixed pool of
//! worker threads behind a bounded queue, so overload is a fast 503 with `Retry-After` rather
//! than a growing backlog, and the metrics the autoscaler reads (queue depth, in-flight requests,
//! worker busy time) are exact. Bad input of any kind is a 4xx with a stable error code.
//!
//! Entry points: [`run`] (load the model, then serve), [`run_with_classifier`] (serve a model
//! loaded elsewhere, shared by several replicas), [`app`] (the router, for tests).
//!
//! # Layout
//! - [`config`]: the clap [`Config`]: flags, environment variables, defaults, their checks.
//! - [`state`]: [`AppState`], what the handlers of one instance share.
//! - [`routes`]: the router ([`app`]), handlers, middleware and axum's rejections as errors.
//! - [`server`]: [`run`], [`run_with_classifier`], [`serve`], graceful shutdown.
//! - [`error`]: the [`Error`] enum, its codes and its one HTTP response.
//! - [`metrics`]: the Prometheus registry of one instance.
//! - [`request`]: the `/infer` body (JSON or raw image) and its validation.
//! - [`classify`]: one `/infer` request on a worker: decode, preprocess, model, stage times.
//! - [`oip`]: the Open Inference Protocol (KServe v2) beside `/infer`: metadata, readiness,
//!   inference with JSON, base64 and binary tensors, the classification extension.
//! - [`signature`]: the model's inputs and outputs as its ONNX graph declares them.
//! - [`worker_pool`]: the bounded pool of blocking workers.
//! - [`decode`]: image bytes to RGB8 with decoder limits (decompression bombs).
//! - [`preprocess`]: resize, centre-crop and normalise into the model input.
//! - [`model`]: the [`Classifier`] under either runtime, softmax and top-k.
//! - [`runtime`]: `--runtime`: tract or onnxruntime, and loading onnxruntime's library.
//! - [`tract_model`]: the model planned by tract, per-worker tract state.
//! - [`ort_model`]: the model under onnxruntime, one session per worker.
//! - [`cpu_quota`]: the default worker count, from the cgroup CPU limit.

pub mod classify;
pub mod config;
pub mod cpu_quota;
pub mod decode;
pub mod error;
pub mod metrics;
pub mod model;
pub mod oip;
pub mod ort_model;
pub mod preprocess;
pub mod request;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod signature;
pub mod state;
pub mod tract_model;
pub mod worker_pool;

pub use config::Config;
pub use error::Error;
pub use model::Classifier;
pub use routes::app;
pub use server::{run, run_with_classifier, serve};
pub use state::AppState;
