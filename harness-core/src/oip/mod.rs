//! The Open Inference Protocol (KServe "v2" REST), as the harness speaks it to third-party model
//! servers (Triton, KServe runtimes, Seldon MLServer): the JSON bodies, the typed tensor data,
//! the binary tensor extension, and reading a label out of an answer.
//!
//! Endpoints, relative to a server's base URL (each also under `/v2/models/{m}/versions/{v}`):
//! `GET /v2`, `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{m}` (metadata),
//! `GET /v2/models/{m}/ready`, `POST /v2/models/{m}/infer`. Errors are `{"error":"message"}`.
//!
//! # Layout
//! - this file: request, response, metadata and error bodies, and the endpoint paths;
//! - [`tensor`]: datatypes, [`Tensor`] and its data as a typed enum, BYTES element helpers;
//! - [`raw`]: the raw (little-endian) form of tensor data and BYTES elements;
//! - [`binary`]: the binary tensor extension (`binary_data_size`,
//!   `Inference-Header-Content-Length`), encoding and checked decoding;
//! - [`label`]: classification strings (`score:index:label`) and the label of an answer.

pub mod binary;
pub mod label;
pub mod raw;
pub mod tensor;

use serde::{Deserialize, Serialize};

pub use binary::{BinaryMessage, HEADER_CONTENT_LENGTH};
pub use label::{Classification, top_label};
pub use tensor::{Datatype, Parameters, Tensor, TensorData};

/// Why a v2 body could not be built or read. Every check of a hostile body ends here: nothing in
/// this module panics or allocates what a header claims before checking it against the body.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The JSON part is not a v2 body.
    #[error("invalid v2 JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// `Inference-Header-Content-Length` points past the end of the body.
    #[error("the JSON header claims {header} bytes but the body has {body}")]
    HeaderLength { header: usize, body: usize },
    /// The `binary_data_size` values do not add up to the bytes after the JSON header.
    #[error("binary_data_size values add up to {declared} bytes but {actual} follow the header")]
    BinarySize { declared: u64, actual: usize },
    /// A parameter of the extension has the wrong type or value.
    #[error("tensor {tensor:?}: invalid parameter {name:?}")]
    Parameter { tensor: String, name: &'static str },
    /// A shape with a negative dimension, or whose element count overflows.
    #[error("tensor {tensor:?}: invalid shape {shape:?}")]
    Shape { tensor: String, shape: Vec<i64> },
    /// The data holds a different number of elements than the shape says.
    #[error("tensor {tensor:?}: {actual} elements where the shape says {expected}")]
    ElementCount {
        tensor: String,
        expected: u64,
        actual: u64,
    },
    /// A value that does not fit the datatype (a string in an FP32 tensor, 300 in UINT8).
    #[error("tensor {tensor:?}: a value does not fit {datatype}")]
    Value { tensor: String, datatype: Datatype },
    /// A BYTES element's 4-byte length runs past the end of the tensor's bytes.
    #[error("tensor {tensor:?}: BYTES element {index} runs past the end of the data")]
    BytesElement { tensor: String, index: u64 },
    /// Base64 data that does not decode.
    #[error("tensor {tensor:?}: invalid base64 in a BYTES element")]
    Base64 { tensor: String },
    /// A BYTES element that must go into JSON as a string is not UTF-8.
    #[error("tensor {tensor:?}: a BYTES element is not UTF-8 (use base64 or the binary extension)")]
    NotUtf8 { tensor: String },
    /// The datatype has no raw encoding here (FP16 and BF16 are read, never written).
    #[error("tensor {tensor:?}: {datatype} cannot be written in binary")]
    Unsupported { tensor: String, datatype: Datatype },
}

/// `POST /v2/models/{m}/infer` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    pub inputs: Vec<Tensor>,
    /// The outputs wanted; absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One entry of a request's `outputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

impl RequestedOutput {
    /// An output answered as the top `k` classes, `score:index:label` strings (Triton's
    /// classification extension).
    pub fn classification(name: impl Into<String>, k: u32) -> Self {
        let mut parameters = Parameters::new();
        parameters.insert(label::CLASSIFICATION_PARAMETER.into(), k.into());
        Self {
            name: name.into(),
            parameters: Some(parameters),
        }
    }
}

/// `POST /v2/models/{m}/infer` 200 body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    pub model_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    pub outputs: Vec<Tensor>,
}

/// The body of every v2 error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `GET /v2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `GET /v2/models/{m}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub inputs: Vec<TensorMetadata>,
    #[serde(default)]
    pub outputs: Vec<TensorMetadata>,
}

/// An input or output of [`ModelMetadata`]; `-1` in `shape` is a variable dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
}

/// The path of a model's endpoints: `/v2/models/{m}` or `/v2/models/{m}/versions/{v}`.
/// Model names and versions are used as given; they are configuration, not user input.
pub fn model_path(model: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/v2/models/{model}/versions/{v}"),
        None => format!("/v2/models/{model}"),
    }
}

/// `POST` target of an inference: `<model path>/infer`.
pub fn infer_path(model: &str, version: Option<&str>) -> String {
    format!("{}/infer", model_path(model, version))
}

/// `GET` target of a model's readiness: `<model path>/ready`.
pub fn ready_path(model: &str, version: Option<&str>) -> String {
    format!("{}/ready", model_path(model, version))
}

impl InferenceRequest {
    /// A request of these inputs, every output wanted.
    pub fn new(inputs: Vec<Tensor>) -> Self {
        Self {
            id: None,
            parameters: None,
            inputs,
            outputs: None,
        }
    }

    /// Reads a request, JSON only or with the binary extension (`header_length` is the
    /// `Inference-Header-Content-Length` header, if any).
    pub fn decode(body: &[u8], header_length: Option<usize>) -> Result<Self, CodecError> {
        binary::decode(body, header_length, |r: &mut Self| &mut r.inputs)
    }
}

impl InferenceResponse {
    /// Reads a response, JSON only or with the binary extension (`header_length` is the
    /// `Inference-Header-Content-Length` header, if any).
    pub fn decode(body: &[u8], header_length: Option<usize>) -> Result<Self, CodecError> {
        binary::decode(body, header_length, |r: &mut Self| &mut r.outputs)
    }
}

#[cfg(test)]
mod tests;
