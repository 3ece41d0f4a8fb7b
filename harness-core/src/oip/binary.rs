//! The binary tensor extension (Triton's, used by its clients): a tensor's data leaves the JSON
//! and follows it as raw bytes. The tensor carries `"parameters":{"binary_data_size":N}`, the
//! HTTP header `Inference-Header-Content-Length` gives the JSON's length, and the raw parts
//! follow in the order of the tensors. A client asks for a binary output with
//! `"parameters":{"binary_data":true}` on the requested output.
//!
//! Decoding trusts nothing: the header length must lie within the body, the sizes must add up
//! to exactly the bytes after the JSON, and every part must hold the elements its shape says.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CodecError, InferenceRequest, InferenceResponse, Tensor};

/// The HTTP header giving the length of the JSON part (lower case, as `http` names headers).
pub const HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";
/// The tensor parameter giving the size of its raw part.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";
/// The requested-output parameter asking for the output in binary.
pub const BINARY_DATA: &str = "binary_data";
/// The content type of a body with a binary section.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// A body with a binary section, and the value of its `Inference-Header-Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMessage {
    pub body: Vec<u8>,
    pub header_length: usize,
}

impl InferenceRequest {
    /// This request with every input's data in the binary section.
    pub fn encode_binary(self) -> Result<BinaryMessage, CodecError> {
        encode(self, |r| &mut r.inputs, |_| true)
    }
}

impl InferenceResponse {
    /// This response with the data of the outputs `binary` picks in the binary section.
    pub fn encode_binary(
        self,
        binary: impl Fn(&Tensor) -> bool,
    ) -> Result<BinaryMessage, CodecError> {
        encode(self, |r| &mut r.outputs, binary)
    }
}

fn encode<M: Serialize>(
    mut message: M,
    tensors: fn(&mut M) -> &mut Vec<Tensor>,
    binary: impl Fn(&Tensor) -> bool,
) -> Result<BinaryMessage, CodecError> {
    let mut parts = Vec::new();
    for tensor in tensors(&mut message).iter_mut().filter(|t| binary(t)) {
        let raw = tensor.to_raw()?;
        tensor.data = None;
        tensor.set_parameter(BINARY_DATA_SIZE, Value::from(raw.len() as u64));
        parts.push(raw);
    }
    let mut body = serde_json::to_vec(&message).map_err(CodecError::Json)?;
    let header_length = body.len();
    body.reserve(parts.iter().map(Vec::len).sum());
    parts.iter().for_each(|p| body.extend_from_slice(p));
    Ok(BinaryMessage {
        body,
        header_length,
    })
}

/// Reads a message whose JSON part is `header_length` bytes long (the whole body when `None`),
/// then fills the data of every tensor with a `binary_data_size` from the bytes after it.
pub(super) fn decode<M: DeserializeOwned>(
    body: &[u8],
    header_length: Option<usize>,
    tensors: fn(&mut M) -> &mut Vec<Tensor>,
) -> Result<M, CodecError> {
    let header_length = header_length.unwrap_or(body.len());
    if header_length > body.len() {
        return Err(CodecError::HeaderLength {
            header: header_length,
            body: body.len(),
        });
    }
    let (json, mut rest) = body.split_at(header_length);
    let mut message: M = serde_json::from_slice(json).map_err(CodecError::Json)?;
    let tensors = tensors(&mut message);

    // Every size is read and the sum checked before any part is touched.
    let mut sizes = Vec::with_capacity(tensors.len());
    let mut declared = 0u64;
    for tensor in tensors.iter() {
        let size = binary_size(tensor)?;
        if let Some(size) = size {
            declared = declared.checked_add(size).ok_or(CodecError::BinarySize {
                declared: u64::MAX,
                actual: rest.len(),
            })?;
        }
        sizes.push(size);
    }
    if declared != rest.len() as u64 {
        return Err(CodecError::BinarySize {
            declared,
            actual: rest.len(),
        });
    }
    for (tensor, size) in tensors.iter_mut().zip(sizes) {
        let Some(size) = size else { continue };
        // In bounds: the sizes add up to the rest's length.
        let (raw, after) = rest.split_at(size as usize);
        tensor.set_raw(raw)?;
        rest = after;
    }
    Ok(message)
}

/// A tensor's `binary_data_size`, if it has one: a non-negative integer, and no JSON data beside.
fn binary_size(tensor: &Tensor) -> Result<Option<u64>, CodecError> {
    let Some(value) = tensor.parameter(BINARY_DATA_SIZE) else {
        return Ok(None);
    };
    let invalid = || CodecError::Parameter {
        tensor: tensor.name.clone(),
        name: BINARY_DATA_SIZE,
    };
    let size = value.as_u64().ok_or_else(invalid)?;
    if tensor.data.is_some() {
        return Err(invalid());
    }
    Ok(Some(size))
}
