//! An HTTP image classifier on tract-onnx: `POST /infer` takes a photo (base64 JSON or the raw
//! file) and answers the top-k ImageNet classes with their probabilities and where the time went.
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
//! - [`config`]: the clap [`Config`]: flags, environment variables, defaults.
//! - [`cpu_quota`]: the default worker count, from the cgroup CPU limit.
//! - [`server`]: [`run`], [`run_with_classifier`], [`serve`], graceful shutdown.
//! - [`routes`]: the router, handlers, middleware and the error mapping of axum's own rejections.
//! - [`request`]: the `/infer` body (JSON or raw image) and its validation.
//! - [`state`]: per-instance state and the request pipeline run on a worker.
//! - [`pool`]: the bounded pool of blocking workers.
//! - [`decode`]: image bytes to RGB8 with decoder limits (decompression bombs).
//! - [`preprocess`]: resize, centre-crop and normalise into the model input.
//! - [`model`]: the tract [`Classifier`], softmax and top-k.
//! - [`metrics`]: the Prometheus registry of one instance.
//! - [`error`]: the [`Error`] enum, its codes and its HTTP responses.

pub mod config;
pub mod cpu_quota;
pub mod decode;
pub mod error;
pub mod metrics;
pub mod model;
pub mod pool;
pub mod preprocess;
pub mod request;
pub mod routes;
pub mod server;
pub mod state;

pub use config::Config;
pub use error::Error;
pub use model::Classifier;
pub use routes::app;
pub use server::{run, run_with_classifier, serve};
pub use state::AppState;
