//! The state of one service instance, shared by its handlers: metrics, the worker pool, the
//! classifier once it is loaded, and the limits a request is held to.
//!
//! What a request does with it lives in `classify.rs`; this module only holds and hands
//! out, so that it depends on no request type.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::Config;
use crate::decode::DecodeLimits;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::model::{Classifier, Session};
use crate::preprocess::Preprocessor;
use crate::worker_pool::WorkerPool;

/// What each worker keeps from one request to the next: its buffers (the decoded base64, the
/// pixels, the model input) and the model's execution state, too costly to rebuild per image.
/// Reused memory is already mapped: a fresh megabyte would cost a page fault per 4 KiB.
#[derive(Debug, Default)]
pub struct Workspace {
    /// The image file decoded from a JSON body's base64.
    pub payload: Vec<u8>,
    /// The last image's RGB8 pixels, handed back to the decoder for the next one.
    pub pixels: Vec<u8>,
    /// The model input, `3 × side × side` values.
    pub input: Vec<f32>,
    pub preprocessor: Preprocessor,
    pub session: Session,
}

/// Shared state of the HTTP handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    metrics: Metrics,
    pool: WorkerPool<Workspace>,
    classifier: OnceLock<Arc<Classifier>>,
    limits: DecodeLimits,
    max_body_bytes: usize,
    request_timeout: Duration,
    concurrency_limit: usize,
}

impl AppState {
    /// State with its workers started but no model yet: `/readyz` says 503 until
    /// [`AppState::set_classifier`].
    pub fn new(config: &Config) -> Result<Self, Error> {
        let metrics = Metrics::new();
        metrics.set_model(&config.model_name(), config.input_size);
        let pool = WorkerPool::new(
            config.worker_count(),
            config.queue_capacity,
            metrics.clone(),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                metrics,
                pool,
                classifier: OnceLock::new(),
                limits: DecodeLimits::new(config.max_pixels),
                max_body_bytes: config.max_body_bytes,
                request_timeout: config.request_timeout,
                concurrency_limit: config.concurrency_limit(),
            }),
        })
    }

    /// State serving an already loaded classifier: ready at once.
    pub fn with_classifier(config: &Config, classifier: Arc<Classifier>) -> Result<Self, Error> {
        let state = Self::new(config)?;
        state.set_classifier(classifier);
        Ok(state)
    }

    /// Installs the loaded and warmed-up classifier and reports ready. Later calls are ignored:
    /// an instance serves one model for its whole life.
    pub fn set_classifier(&self, classifier: Arc<Classifier>) {
        let runtime = classifier.runtime().clone();
        if self.inner.classifier.set(classifier).is_ok() {
            let metrics = &self.inner.metrics;
            metrics.set_runtime(runtime.runtime.label(), &runtime.version);
            metrics.set_ready(true);
        }
    }

    /// The classifier, once loaded.
    pub fn classifier(&self) -> Option<&Arc<Classifier>> {
        self.inner.classifier.get()
    }

    /// True once the model is loaded and warmed up.
    pub fn is_ready(&self) -> bool {
        self.classifier().is_some()
    }

    /// This instance's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The worker pool (tests use it to occupy workers deterministically).
    pub fn pool(&self) -> &WorkerPool<Workspace> {
        &self.inner.pool
    }

    /// The bounds of one image decode (`--max-pixels` and the allocation budget it implies).
    pub fn decode_limits(&self) -> DecodeLimits {
        self.inner.limits
    }

    /// Largest accepted request body.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    /// Time limit of one `/infer` request.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Concurrent `/infer` requests allowed before shedding.
    pub fn concurrency_limit(&self) -> usize {
        self.inner.concurrency_limit
    }
}
