//! Every way a request or the start-up can fail, with a stable code per kind.
//!
//! Bad input is the client's problem and says exactly what was wrong (4xx); overload and
//! readiness are 503 with `Retry-After`, so a dispatcher can try another replica; anything else is
//! a 500 whose detail is logged and never sent.

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fast_image_resize::ResizeError;
use harness_core::api_error::{ErrorDetail, error_response, overloaded_response};
use harness_core::image_payload::PayloadError;
use image::ImageError;
use tract_onnx::prelude::TractError;

/// Why onnxruntime's library did not load, shared: the first outcome of a load is kept for the
/// life of the process (see `runtime.rs`).
pub type LoadFailure = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: u32 = 1;

/// Errors of the inference service.
///
/// Where a lower-level error caused the failure, the variant keeps it as its `source()`; the
/// message (which clients see for 4xx) still includes its text, as it always has.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request body has no bytes.
    #[error("request body is empty")]
    EmptyBody,
    /// The body is not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// JSON, but not the shape `{"image": "<base64>"}`.
    #[error("{0}")]
    InvalidRequest(String),
    /// A required JSON field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A JSON field that the API does not have.
    #[error("unknown field `{0}`: the body is {{\"image\": \"<base64>\"}}")]
    UnknownField(String),
    /// The `image` string is not base64 (or an accepted `data:` URL).
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Neither JSON nor `image/*`.
    #[error("unsupported content type {0:?}: send application/json or image/*")]
    UnsupportedMediaType(String),
    /// The body is larger than `--max-body-bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The connection failed while the body was being received.
    #[error("cannot read the request body: {0}")]
    BodyRead(#[source] BytesRejection),
    /// A v2 body that the Open Inference Protocol codec refused (JSON, shape, binary sizes).
    #[error("{0}")]
    InferenceBody(#[source] harness_core::oip::CodecError),
    /// A well-formed v2 request that this model cannot answer (input name, datatype, shape,
    /// batch size, requested outputs).
    #[error("{0}")]
    InferenceRequest(String),
    /// A v2 path naming a model or version this instance does not serve.
    #[error("unknown model {0:?}")]
    UnknownModel(String),
    /// The bytes are not in a supported image format.
    #[error("not a supported image: expected JPEG, PNG, WebP, GIF or BMP")]
    NotAnImage,
    /// A supported format, but the data is corrupt or truncated (found by this crate's own
    /// checks: the JPEG marker walk, a zero-pixel header, a panicking decoder).
    #[error("cannot decode the image: {0}")]
    InvalidImage(String),
    /// The image decoder refused the data as corrupt.
    #[error("cannot decode the image: {0}")]
    Decode(#[source] ImageError),
    /// The image data ends before the decoder has all its pixels.
    #[error("cannot decode the image: the image data is truncated")]
    Truncated(#[source] ImageError),
    /// The resampler refused the decoded image.
    #[error("cannot decode the image: cannot resample: {0}")]
    Resample(#[source] ResizeError),
    /// The header declares more pixels than `--max-pixels`, or decoding would need more memory
    /// than the decoder limits allow.
    #[error("image too large: {0}")]
    TooManyPixels(String),
    /// The decoder's own limits (dimensions, memory) refused the image.
    #[error("image too large: {0}")]
    DecoderLimit(#[source] ImageError),
    /// Every worker is busy and the waiting queue is full.
    #[error("overloaded: all workers are busy and the queue is full")]
    Overloaded,
    /// The model is not loaded and warmed up yet.
    #[error("not ready: the model is still loading")]
    NotReady,
    /// The request took longer than `--request-timeout`.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The worker pool is closed: the service is stopping.
    #[error("shutting down")]
    ShuttingDown,
    /// A configuration value that clap could not check on its own.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The model and its labels or configuration do not fit together.
    #[error("model: {0}")]
    Model(String),
    /// tract cannot read, shape or plan the ONNX file at `path`; `what` says which step failed.
    #[error("model: {what} {}: {source:#}", .path.display())]
    ModelFile {
        what: String,
        path: PathBuf,
        #[source]
        source: TractError,
    },
    /// tract cannot describe the planned model's output.
    #[error("model: output: {0:#}")]
    ModelOutput(#[source] TractError),
    /// The model file cannot be read (onnxruntime reads it whole, then builds its sessions).
    #[error("model: cannot read {}: {source}", .path.display())]
    ModelRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `--runtime onnxruntime` and the onnxruntime library at `path` does not load.
    #[error(
        "onnxruntime: cannot load the library {}: {source} (set ORT_DYLIB_PATH to \
         libonnxruntime.so, e.g. from `pip install onnxruntime`, or use --runtime tract)",
        .path.display()
    )]
    RuntimeLibrary {
        path: PathBuf,
        #[source]
        source: LoadFailure,
    },
    /// onnxruntime cannot build a session from the model file at `path`.
    #[error("model: onnxruntime cannot load {}: {source}", .path.display())]
    OrtModelFile {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
    /// onnxruntime failed; `what` says at which step.
    #[error("onnxruntime: {what}: {source}")]
    Onnxruntime {
        what: &'static str,
        #[source]
        source: ort::Error,
    },
    /// The labels file cannot be read.
    #[error("model: cannot read labels {}: {source}", .path.display())]
    Labels {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bug with no lower-level error to keep (a panicking worker, a missing model output).
    #[error("internal: {0}")]
    Internal(String),
    /// Running the model failed; `what` says at which step.
    #[error("internal: {what}: {source:#}")]
    ModelRun {
        what: &'static str,
        #[source]
        source: TractError,
    },
    /// Any other unexpected runtime failure (a thread that cannot start, a buffer view that
    /// does not fit); `what` says what was being done.
    #[error("internal: {what}: {source}")]
    Unexpected {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// An [`Error::Unexpected`]: `what` failed because of `source`.
    pub fn unexpected(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Unexpected {
            what,
            source: source.into(),
        }
    }

    /// The stable, machine-readable code clients and metrics see.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyBody => "empty_body",
            Error::InvalidJson(_) => "invalid_json",
            Error::InvalidRequest(_) => "invalid_request",
            Error::MissingField(_) => "missing_field",
            Error::UnknownField(_) => "unknown_field",
            Error::Payload(err) => err.code(),
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::BodyRead(_) => "body_read_failed",
            Error::InferenceBody(_) | Error::InferenceRequest(_) => "invalid_inference_request",
            Error::UnknownModel(_) => "model_not_found",
            Error::NotAnImage => "not_an_image",
            Error::InvalidImage(_)
            | Error::Decode(_)
            | Error::Truncated(_)
            | Error::Resample(_) => "invalid_image",
            Error::TooManyPixels(_) | Error::DecoderLimit(_) => "too_many_pixels",
            Error::Overloaded => "overloaded",
            Error::NotReady => "not_ready",
            Error::Timeout(_) => "timeout",
            Error::ShuttingDown => "shutting_down",
            Error::Config(_) => "invalid_config",
            Error::Model(_)
            | Error::ModelFile { .. }
            | Error::ModelOutput(_)
            | Error::ModelRead { .. }
            | Error::OrtModelFile { .. }
            | Error::RuntimeLibrary { .. }
            | Error::Labels { .. } => "model_error",
            Error::Internal(_)
            | Error::ModelRun { .. }
            | Error::Onnxruntime { .. }
            | Error::Unexpected { .. } => "internal",
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::EmptyBody
            | Error::InvalidJson(_)
            | Error::Payload(_)
            | Error::BodyRead(_)
            | Error::InferenceBody(_)
            | Error::InferenceRequest(_) => StatusCode::BAD_REQUEST,
            Error::UnknownModel(_) => StatusCode::NOT_FOUND,
            Error::InvalidRequest(_)
            | Error::MissingField(_)
            | Error::UnknownField(_)
            | Error::NotAnImage
            | Error::InvalidImage(_)
            | Error::Decode(_)
            | Error::Truncated(_)
            | Error::Resample(_)
            | Error::TooManyPixels(_)
            | Error::DecoderLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Overloaded | Error::NotReady | Error::Timeout(_) | Error::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Config(_)
            | Error::Model(_)
            | Error::ModelFile { .. }
            | Error::ModelOutput(_)
            | Error::ModelRead { .. }
            | Error::OrtModelFile { .. }
            | Error::RuntimeLibrary { .. }
            | Error::Labels { .. }
            | Error::Internal(_)
            | Error::ModelRun { .. }
            | Error::Onnxruntime { .. }
            | Error::Unexpected { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The client sees the code and, below 500, the message. The detail with its causes rides in
/// the response's extensions: the trace layer logs it (at ERROR for a 500) and the request
/// metrics count the response by its code.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let response = if status == StatusCode::SERVICE_UNAVAILABLE {
            overloaded_response(code, self.to_string(), RETRY_AFTER_SECS)
        } else {
            error_response(status, code, self.to_string())
        };
        ErrorDetail::attach(response, code, &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn client_errors_are_4xx_and_overload_carries_retry_after() {
        let bad = Error::InvalidImage("truncated".into()).into_response();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            bad.extensions().get::<ErrorDetail>().map(ErrorDetail::code),
            Some("invalid_image")
        );

        let busy = Error::Overloaded.into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");

        let payload = Error::from(PayloadError::Empty);
        assert_eq!(payload.code(), "empty_image");
        assert_eq!(payload.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn causes_are_kept_and_messages_read_as_before() {
        use std::error::Error as _;
        let json = serde_json::from_slice::<serde_json::Value>(b"{").unwrap_err();
        let text = json.to_string();
        let err = Error::InvalidJson(json);
        assert_eq!(err.to_string(), format!("invalid JSON: {text}"));
        assert!(err.source().is_some());

        let err = Error::Labels {
            path: PathBuf::from("/m/labels.txt"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        };
        assert_eq!(
            err.to_string(),
            "model: cannot read labels /m/labels.txt: gone"
        );
        assert_eq!(err.code(), "model_error");
        assert!(err.source().is_some());

        let err = Error::unexpected("cannot start worker thread", std::io::Error::other("no"));
        assert_eq!(err.to_string(), "internal: cannot start worker thread: no");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(err.source().is_some());
    }
}
