//! `POST /v2/models/{m}/infer`: the body is buffered on the executor, then everything else runs
//! on a worker: the v2 codec (JSON, base64, the binary extension, all checked before use), the
//! inputs, one model run per batch item, and the encoded answer.
//!
//! Two inputs are accepted, exactly one per request: [`IMAGE_INPUT`], BYTES `[N]` whose elements
//! are encoded images (decoded and preprocessed like `/infer`'s, with the same limits), or the
//! graph's own input, already preprocessed (FP32 `[N, 3, side, side]`). `N` is at most
//! [`MAX_BATCH`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use harness_core::oip::binary::CONTENT_TYPE as BINARY_CONTENT_TYPE;
use harness_core::oip::{Datatype, HEADER_CONTENT_LENGTH, InferenceRequest, Tensor, TensorData};

use super::ModelPath;
use super::metadata::{IMAGE_INPUT, MAX_BATCH};
use super::outputs::{self, Batch};
use crate::classify::keep;
use crate::decode::{self, DecodeLimits};
use crate::error::Error;
use crate::metrics::{Metrics, Stage};
use crate::model::Classifier;
use crate::request::buffered_body;
use crate::state::{AppState, Workspace};

/// A buffered v2 body and its `Inference-Header-Content-Length`, if any.
#[derive(Debug, Clone)]
pub struct V2Body {
    bytes: Bytes,
    header_length: Option<usize>,
}

impl FromRequest<AppState> for V2Body {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let header_length = header_length(req.headers())?;
        let bytes = buffered_body(req, state).await?;
        if bytes.is_empty() {
            return Err(Error::EmptyBody);
        }
        Ok(Self {
            bytes,
            header_length,
        })
    }
}

/// `Inference-Header-Content-Length`: absent, or a decimal byte count.
fn header_length(headers: &HeaderMap) -> Result<Option<usize>, Error> {
    let Some(value) = headers.get(HEADER_CONTENT_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::InferenceRequest(format!(
                "{HEADER_CONTENT_LENGTH} must be a byte count, got {value:?}"
            ))
        })
}

/// The handler: resolves the model, then does the whole request on a worker.
pub async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    body: V2Body,
) -> Result<Response, Error> {
    let classifier = Arc::clone(path.resolve(&state)?);
    let limits = state.decode_limits();
    let metrics = state.metrics().clone();
    let encoded = state
        .pool()
        .run(move |workspace| on_worker(&classifier, &limits, &metrics, &body, workspace))
        .await??;
    Ok(encoded.into_response())
}

/// What one request needs on the worker besides its workspace.
struct Context<'a> {
    classifier: &'a Classifier,
    limits: &'a DecodeLimits,
    metrics: &'a Metrics,
}

fn on_worker(
    classifier: &Classifier,
    limits: &DecodeLimits,
    metrics: &Metrics,
    body: &V2Body,
    workspace: &mut Workspace,
) -> Result<outputs::Encoded, Error> {
    let request =
        InferenceRequest::decode(&body.bytes, body.header_length).map_err(Error::InferenceBody)?;
    let context = Context {
        classifier,
        limits,
        metrics,
    };
    let [input] = request.inputs.as_slice() else {
        return Err(Error::InferenceRequest(format!(
            "expected exactly one input, `{IMAGE_INPUT}` (BYTES) or `{}` (preprocessed), got {}",
            graph_input_name(classifier),
            request.inputs.len()
        )));
    };
    let batch = if input.name == IMAGE_INPUT {
        images(&context, input, workspace)?
    } else if input.name == graph_input_name(classifier) {
        tensors(&context, input, workspace)?
    } else {
        return Err(Error::InferenceRequest(format!(
            "unknown input {:?}: this model takes `{IMAGE_INPUT}` or `{}`",
            input.name,
            graph_input_name(classifier)
        )));
    };
    outputs::answer(classifier, &request, batch)
}

fn graph_input_name(classifier: &Classifier) -> &str {
    classifier
        .signature()
        .input()
        .map_or("input", |spec| spec.name.as_str())
}

/// The batch size of `input`, checked against the limit.
fn batch_size(input: &Tensor) -> Result<usize, Error> {
    let n = input.shape.first().copied().unwrap_or(0);
    match usize::try_from(n) {
        Ok(n @ 1..=MAX_BATCH) => Ok(n),
        _ => Err(Error::InferenceRequest(format!(
            "input {:?}: the batch size must be 1 to {MAX_BATCH}, got {n}",
            input.name
        ))),
    }
}

fn data_missing(input: &Tensor) -> Error {
    Error::InferenceRequest(format!("input {:?} has no data", input.name))
}

/// `image`, BYTES `[N]`: each element decoded and preprocessed as `/infer` does, then the model.
fn images(
    context: &Context<'_>,
    input: &Tensor,
    workspace: &mut Workspace,
) -> Result<Batch, Error> {
    if input.datatype != Datatype::Bytes || input.shape.len() != 1 {
        return Err(Error::InferenceRequest(format!(
            "input `{IMAGE_INPUT}` must be BYTES of shape [N], got {} {:?}",
            input.datatype, input.shape
        )));
    }
    let n = batch_size(input)?;
    let files = input
        .bytes_elements()
        .ok_or_else(|| data_missing(input))?
        .map_err(Error::InferenceBody)?;
    let mut logits = Vec::new();
    for file in &files {
        let started = Instant::now();
        let pixels = std::mem::take(&mut workspace.pixels);
        let image = decode::decode_into(file, context.limits, pixels)?;
        let started = lap(context.metrics, Stage::Decode, started);
        let preprocessing = context.classifier.preprocessing();
        workspace
            .preprocessor
            .run_into(preprocessing, &image, &mut workspace.input)?;
        workspace.pixels = keep(image.into_raw());
        let started = lap(context.metrics, Stage::Preprocess, started);
        run_model(context, workspace, &mut logits)?;
        lap(context.metrics, Stage::Model, started);
    }
    Ok(Batch { n, logits })
}

/// The graph's input, FP32 `[N, ...]` already preprocessed: one model run per item.
fn tensors(
    context: &Context<'_>,
    input: &Tensor,
    workspace: &mut Workspace,
) -> Result<Batch, Error> {
    let preprocessing = context.classifier.preprocessing();
    let side = i64::from(preprocessing.input_size());
    let item = [3, side, side];
    if input.datatype != Datatype::Fp32 || input.shape.len() != 4 || input.shape[1..] != item {
        return Err(Error::InferenceRequest(format!(
            "input {:?} must be FP32 of shape [N, 3, {side}, {side}], got {} {:?}",
            input.name, input.datatype, input.shape
        )));
    }
    let n = batch_size(input)?;
    let Some(TensorData::Float(values)) = &input.data else {
        return Err(data_missing(input));
    };
    let mut logits = Vec::new();
    for chunk in values.chunks_exact(preprocessing.tensor_len()) {
        workspace.input.clear();
        workspace.input.extend(chunk.iter().map(|&v| v as f32));
        let started = Instant::now();
        run_model(context, workspace, &mut logits)?;
        lap(context.metrics, Stage::Model, started);
    }
    Ok(Batch { n, logits })
}

/// Runs the model on the workspace's input and appends its logits to `logits`.
fn run_model(
    context: &Context<'_>,
    workspace: &mut Workspace,
    logits: &mut Vec<f32>,
) -> Result<(), Error> {
    let row = context
        .classifier
        .logits(&workspace.input, &mut workspace.session)?;
    logits.extend_from_slice(&row);
    Ok(())
}

/// Records a stage that began at `started`; returns the start of the next.
fn lap(metrics: &Metrics, stage: Stage, started: Instant) -> Instant {
    metrics.observe_stage(stage, started.elapsed().as_secs_f64());
    Instant::now()
}

impl outputs::Encoded {
    /// The HTTP answer: JSON, or JSON then the binary section with its header length.
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        let headers = response.headers_mut();
        match self.header_length {
            Some(length) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(BINARY_CONTENT_TYPE),
                );
                headers.insert(HEADER_CONTENT_LENGTH, HeaderValue::from(length));
            }
            None => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
        }
        response
    }
}
