//! One `/infer` request, start to finish: its body goes to a worker, which parses it, decodes
//! the image, preprocesses it and runs the model, timing each stage.
//!
//! Everything after the body is buffered runs on the worker pool, never on the async executor:
//! parsing a large JSON body and its base64 is CPU work too, so it counts as "decode". Each
//! stage writes into the worker's buffers (see `state.rs`), allocated once and reused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness_core::wire::{InferResponse, Prediction, StageTimings};

use crate::decode::{self, DecodeLimits};
use crate::error::Error;
use crate::metrics::{Metrics, Stage};
use crate::model::Classifier;
use crate::request::InferBody;
use crate::state::{AppState, Workspace};

/// Classifies one request body on a worker: parse, decode, preprocess, run the model.
///
/// Fails with [`Error::NotReady`] before the model is loaded, and with the pool's
/// [`Error::Overloaded`] or [`Error::ShuttingDown`] when no worker can take the job.
pub async fn classify(state: &AppState, body: InferBody) -> Result<InferResponse, Error> {
    let started = Instant::now();
    let classifier = Arc::clone(state.classifier().ok_or(Error::NotReady)?);
    let limits = state.decode_limits();
    let metrics = state.metrics().clone();
    let model = classifier.name().to_owned();
    let (predictions, mut timing_ms) = state
        .pool()
        .run(move |workspace| on_worker(&classifier, &limits, &metrics, body, workspace))
        .await??;
    // Measured from the moment the body was received, so queueing for a worker counts.
    timing_ms.total = millis(started.elapsed());
    Ok(InferResponse {
        predictions,
        model,
        timing_ms,
    })
}

/// The predictions and the per-stage times; `total` is filled in by [`classify`].
type Classified = (Vec<Prediction>, StageTimings);

/// The work of one request, on a worker thread.
fn on_worker(
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
    // "decode" covers the JSON and base64 too: everything from body bytes to pixels. The image
    // is decoded from the body, or from the worker's base64 buffer, where it lies.
    let file = body.image_bytes(&mut workspace.payload)?;
    let pixels = std::mem::take(&mut workspace.pixels);
    let image = decode::decode_into(file, limits, pixels)?;
    let decode = lap(Stage::Decode);
    workspace
        .preprocessor
        .run_into(classifier.preprocessing(), &image, &mut workspace.input)?;
    workspace.pixels = keep(image.into_raw());
    let preprocess = lap(Stage::Preprocess);
    let predictions = classifier.predict(&workspace.input, &mut workspace.session)?;
    let inference = lap(Stage::Model);
    trim(&mut workspace.payload);
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

/// Buffers up to this size are kept for the next request (a 12-megapixel photo's pixels); a
/// larger one, from a rare huge image, is freed rather than held by an idle worker.
const KEEP_BYTES: usize = 36 * 1024 * 1024;

pub fn keep(buffer: Vec<u8>) -> Vec<u8> {
    if buffer.capacity() <= KEEP_BYTES {
        buffer
    } else {
        Vec::new()
    }
}

fn trim(buffer: &mut Vec<u8>) {
    if buffer.capacity() > KEEP_BYTES {
        *buffer = Vec::new();
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
