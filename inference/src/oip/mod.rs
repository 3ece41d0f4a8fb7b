//! The Open Inference Protocol (KServe "v2" REST) beside `/infer`, for clients that speak it
//! (Triton's, KServe's, MLServer's, and the harness's own dispatcher and load tester).
//!
//! Endpoints (each model one also under `/v2/models/{m}/versions/{v}`, version `1`):
//! `GET /v2`, `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{m}` (metadata),
//! `GET /v2/models/{m}/ready`, `GET /v2/models/{m}/config` (what Triton's clients read) and
//! `POST /v2/models/{m}/infer`. Every v2 error is `{"error":"message"}` with the status rules of
//! `/infer` (4xx for bad input, 503 with `Retry-After` when full): [`error_shape`] rewrites the
//! crate's one error body on every `/v2` path, axum's 404, 405 and 413 included.
//!
//! # Layout
//! - this file: the router and the metadata, readiness and config handlers;
//! - [`metadata`]: the server and model metadata and the model config, from the ONNX graph;
//! - [`infer`]: the inference body on a worker: inputs (images as BYTES or the model's own
//!   tensor), a batch run one item at a time;
//! - [`outputs`]: the answer: logits or the classification extension, JSON or binary.

pub mod infer;
pub mod metadata;
pub mod outputs;

use axum::Json;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use harness_core::api_error::ApiErrorBody;
use harness_core::oip::{ErrorBody, ModelMetadata, ServerMetadata};
use serde::Deserialize;
use serde_json::{Value, json};

use self::metadata::MODEL_VERSION;
use crate::error::Error;
use crate::model::Classifier;
use crate::state::AppState;

/// The v2 routes; `infer` is `POST /v2/models/{m}/infer` with the limits of `/infer` around it.
pub fn router(infer: MethodRouter<AppState>) -> Router<AppState> {
    let mut router = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready));
    for base in [
        "/v2/models/{model}",
        "/v2/models/{model}/versions/{version}",
    ] {
        router = router
            .route(base, get(model_metadata))
            .route(&format!("{base}/ready"), get(model_ready))
            .route(&format!("{base}/config"), get(model_config))
            .route(&format!("{base}/infer"), infer.clone());
    }
    router
}

/// A model path's parameters: the name, and the version when the path has one.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    model: String,
    version: Option<String>,
}

impl ModelPath {
    /// The classifier this path names: 503 before it is loaded, 404 for another name or version.
    pub fn resolve<'s>(
        &self,
        state: &'s AppState,
    ) -> Result<&'s std::sync::Arc<Classifier>, Error> {
        let classifier = state.classifier().ok_or(Error::NotReady)?;
        if self.model != classifier.name() {
            return Err(Error::UnknownModel(self.model.clone()));
        }
        if let Some(version) = &self.version
            && version != MODEL_VERSION
        {
            return Err(Error::UnknownModel(format!("{}/{version}", self.model)));
        }
        Ok(classifier)
    }
}

async fn server_metadata() -> Json<ServerMetadata> {
    Json(metadata::server())
}

async fn live() -> Json<Value> {
    Json(json!({"live": true}))
}

async fn ready(State(state): State<AppState>) -> Result<Json<Value>, Error> {
    state.classifier().ok_or(Error::NotReady)?;
    Ok(Json(json!({"ready": true})))
}

async fn model_metadata(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<ModelMetadata>, Error> {
    Ok(Json(metadata::model(path.resolve(&state)?)))
}

async fn model_ready(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, Error> {
    let classifier = path.resolve(&state)?;
    Ok(Json(json!({"name": classifier.name(), "ready": true})))
}

async fn model_config(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, Error> {
    Ok(Json(metadata::config(path.resolve(&state)?)))
}

/// Largest error body read back to be rewritten; the crate's own are a few hundred bytes.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// On `/v2` paths, turns an error answer into the v2 shape `{"error":"message"}`, keeping its
/// status, its headers (`Retry-After`) and its extensions (the detail the logs and the metrics
/// read). Other paths pass through untouched.
pub async fn error_shape(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let v2 = path == "/v2" || path.starts_with("/v2/");
    let response = next.run(req).await;
    if !v2 || response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, ERROR_BODY_LIMIT).await.unwrap_or_default();
    let message = match serde_json::from_slice::<ApiErrorBody>(&bytes) {
        Ok(body) => body.error.message,
        Err(_) => String::from_utf8_lossy(&bytes).trim().to_owned(),
    };
    let body = serde_json::to_vec(&ErrorBody { error: message }).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body)).into_response()
}
