//! The state of one service instance: metrics, the worker pool, the classifier once it is
//! loaded, and the request pipeline that ties them together.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use harness_core::wire::{InferResponse, StageTimings};

use crate::config::Config;
use crate::decode::{self, DecodeLimits};
use crate::error::Error;
use crate::metrics::{Metrics, Stage};
use crate::model::{Classifier, Session};
use crate::pool::WorkerPool;
use crate::preprocess::Preprocessor;
use crate::request::InferBody;

/// What each worker keeps from one request to the next.
#[derive(Debug, Default)]
pub struct Workspace {
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
        if self.inner.classifier.set(classifier).is_ok() {
            self.inner.metrics.set_ready(true);
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

    /// Classifies one request body on a worker: parse, decode, preprocess, run the model.
    pub async fn classify(&self, body: InferBody) -> Result<InferResponse, Error> {
        let started = Instant::now();
        let classifier = Arc::clone(self.classifier().ok_or(Error::NotReady)?);
        let limits = self.inner.limits;
        let metrics = self.inner.metrics.clone();
        let model = classifier.name().to_owned();
        let (predictions, mut timing_ms) = self
            .inner
            .pool
            .run(move |workspace| pipeline(&classifier, &limits, &metrics, body, workspace))
            .await??;
        timing_ms.total = millis(started.elapsed());
        Ok(InferResponse {
            predictions,
            model,
            timing_ms,
        })
    }
}

type Classified = (Vec<harness_core::wire::Prediction>, StageTimings);

/// The work of one request, on a worker thread.
fn pipeline(
    classifier: &Classifier,
    limits: &DecodeLimits,
    metrics: &Metrics,
    body: InferBody,
    workspace: &mut Workspace,
) -> Result<Classified, Error> {
    let mut stage = Instant::now();
    let mut lap = |name: Stage| {
        let elapsed = stage.elapsed();
        metrics.observe_stage(name, elapsed.as_secs_f64());
        stage = Instant::now();
        millis(elapsed)
    };
    // "decode" covers the JSON and base64 too: everything from body bytes to pixels.
    let image = decode::decode(&body.into_image_bytes()?, limits)?;
    let decode = lap(Stage::Decode);
    let input = workspace
        .preprocessor
        .run(classifier.preprocessing(), &image)?;
    drop(image);
    let preprocess = lap(Stage::Preprocess);
    let predictions = classifier.predict(input, &mut workspace.session)?;
    let inference = lap(Stage::Model);
    Ok((
        predictions,
        StageTimings {
            decode,
            preprocess,
            inference,
            total: 0.0,
        },
    ))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
