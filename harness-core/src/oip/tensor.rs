//! Tensors of the v2 protocol: the datatypes, a tensor's data as a typed enum, its JSON form
//! (a flat row-major array, nested arrays accepted on input), and base64 BYTES elements. The raw
//! form the binary extension carries is in [`super::raw`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::CodecError;

/// The `parameters` object of a request, a tensor or a response.
pub type Parameters = serde_json::Map<String, Value>;

/// The `content_type` parameter, and its value for base64 BYTES elements (MLServer's codec).
pub const CONTENT_TYPE_PARAMETER: &str = "content_type";
pub const CONTENT_TYPE_BASE64: &str = "base64";

/// A tensor datatype, written as on the wire (`FP32`, `BYTES`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Bf16,
    Fp32,
    Fp64,
    Bytes,
}

impl Datatype {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        use Datatype::*;
        match self {
            Bool => "BOOL",
            Uint8 => "UINT8",
            Uint16 => "UINT16",
            Uint32 => "UINT32",
            Uint64 => "UINT64",
            Int8 => "INT8",
            Int16 => "INT16",
            Int32 => "INT32",
            Int64 => "INT64",
            Fp16 => "FP16",
            Bf16 => "BF16",
            Fp32 => "FP32",
            Fp64 => "FP64",
            Bytes => "BYTES",
        }
    }

    /// Bytes per element in the raw form; `None` for BYTES (variable length).
    pub fn element_size(self) -> Option<usize> {
        use Datatype::*;
        match self {
            Bool | Uint8 | Int8 => Some(1),
            Uint16 | Int16 | Fp16 | Bf16 => Some(2),
            Uint32 | Int32 | Fp32 => Some(4),
            Uint64 | Int64 | Fp64 => Some(8),
            Bytes => None,
        }
    }

    fn is_float(self) -> bool {
        matches!(
            self,
            Datatype::Fp16 | Datatype::Bf16 | Datatype::Fp32 | Datatype::Fp64
        )
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tensor's elements, row-major, in the widest Rust type of the datatype's family: the
/// datatype itself stays on the [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    /// UINT8 to UINT64.
    Uint(Vec<u64>),
    /// INT8 to INT64.
    Int(Vec<i64>),
    /// FP16, BF16, FP32, FP64.
    Float(Vec<f64>),
    /// BYTES: one byte string per element.
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::Uint(v) => v.len(),
            TensorData::Int(v) => v.len(),
            TensorData::Float(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A flat JSON array; BYTES elements as strings (they must be UTF-8: binary data goes base64 or
/// through the binary extension).
impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TensorData::Bool(v) => v.serialize(serializer),
            TensorData::Uint(v) => v.serialize(serializer),
            TensorData::Int(v) => v.serialize(serializer),
            TensorData::Float(v) => v.serialize(serializer),
            TensorData::Bytes(v) => serializer.collect_seq(
                v.iter()
                    .map(|e| {
                        std::str::from_utf8(e)
                            .map_err(|_| serde::ser::Error::custom("BYTES element is not UTF-8"))
                    })
                    .collect::<Result<Vec<&str>, S::Error>>()?,
            ),
        }
    }
}

/// One input of a request or output of a response (both have this shape on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTensor")]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: Datatype,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// `None` when the data travels in the binary section (or was not sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<TensorData>,
}

/// A tensor as JSON gives it, before its data is typed by its datatype.
#[derive(Deserialize)]
struct RawTensor {
    name: String,
    shape: Vec<i64>,
    datatype: Datatype,
    #[serde(default)]
    parameters: Option<Parameters>,
    #[serde(default)]
    data: Option<Value>,
}

impl TryFrom<RawTensor> for Tensor {
    type Error = CodecError;

    fn try_from(raw: RawTensor) -> Result<Self, CodecError> {
        let mut tensor = Tensor {
            name: raw.name,
            shape: raw.shape,
            datatype: raw.datatype,
            parameters: raw.parameters,
            data: None,
        };
        if let Some(value) = raw.data {
            let data = from_json(&tensor, value)?;
            tensor.check_count(data.len() as u64)?;
            tensor.data = Some(data);
        }
        Ok(tensor)
    }
}

impl Tensor {
    /// A BYTES tensor of shape `[n]`.
    pub fn bytes(name: impl Into<String>, elements: Vec<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            shape: vec![elements.len() as i64],
            datatype: Datatype::Bytes,
            parameters: None,
            data: Some(TensorData::Bytes(elements)),
        }
    }

    /// A BYTES tensor of shape `[n]` whose elements are base64 text, marked with
    /// `"content_type":"base64"` (the form MLServer decodes).
    pub fn bytes_base64(name: impl Into<String>, elements: Vec<String>) -> Self {
        let mut tensor = Self::bytes(name, elements.into_iter().map(String::into_bytes).collect());
        tensor.set_parameter(CONTENT_TYPE_PARAMETER, CONTENT_TYPE_BASE64.into());
        tensor
    }

    /// Sets one parameter.
    pub fn set_parameter(&mut self, name: &str, value: Value) {
        self.parameters
            .get_or_insert_with(Parameters::new)
            .insert(name.to_owned(), value);
    }

    /// A parameter, if present.
    pub fn parameter(&self, name: &str) -> Option<&Value> {
        self.parameters.as_ref()?.get(name)
    }

    /// The element count the shape says; an error for a negative dimension or an overflow.
    pub fn element_count(&self) -> Result<u64, CodecError> {
        self.shape
            .iter()
            .try_fold(1u64, |n, &d| {
                u64::try_from(d).ok().and_then(|d| n.checked_mul(d))
            })
            .ok_or_else(|| CodecError::Shape {
                tensor: self.name.clone(),
                shape: self.shape.clone(),
            })
    }

    pub(crate) fn check_count(&self, actual: u64) -> Result<(), CodecError> {
        let expected = self.element_count()?;
        if expected != actual {
            return Err(CodecError::ElementCount {
                tensor: self.name.clone(),
                expected,
                actual,
            });
        }
        Ok(())
    }

    /// The BYTES elements as bytes, decoding base64 when the tensor says `content_type` base64.
    /// `None` for another datatype or no data.
    pub fn bytes_elements(&self) -> Option<Result<Vec<Vec<u8>>, CodecError>> {
        let Some(TensorData::Bytes(elements)) = &self.data else {
            return None;
        };
        let base64 = self
            .parameter(CONTENT_TYPE_PARAMETER)
            .and_then(Value::as_str)
            == Some(CONTENT_TYPE_BASE64);
        if !base64 {
            return Some(Ok(elements.clone()));
        }
        Some(
            elements
                .iter()
                .map(|e| {
                    STANDARD.decode(e).map_err(|_| CodecError::Base64 {
                        tensor: self.name.clone(),
                    })
                })
                .collect(),
        )
    }
}

/// Typed data from JSON: nested arrays are flattened row-major, each value checked against the
/// datatype.
fn from_json(tensor: &Tensor, value: Value) -> Result<TensorData, CodecError> {
    let mut flat = Vec::new();
    flatten(value, &mut flat);
    let bad = || CodecError::Value {
        tensor: tensor.name.clone(),
        datatype: tensor.datatype,
    };
    let d = tensor.datatype;
    let data = match d {
        Datatype::Bool => TensorData::Bool(
            flat.iter()
                .map(|v| v.as_bool().ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Bytes => TensorData::Bytes(
            flat.into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.into_bytes()),
                    _ => Err(bad()),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ if d.is_float() => TensorData::Float(
            flat.iter()
                .map(|v| v.as_f64().ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 | Datatype::Uint64 => {
            let bits = d.element_size().unwrap_or(8) as u32 * 8;
            TensorData::Uint(
                flat.iter()
                    .map(|v| {
                        v.as_u64()
                            .filter(|&x| bits == 64 || x >> bits == 0)
                            .ok_or_else(bad)
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => {
            let shift = 64 - d.element_size().unwrap_or(8) as u32 * 8;
            TensorData::Int(
                flat.iter()
                    .map(|v| {
                        v.as_i64()
                            .filter(|&x| (x << shift) >> shift == x)
                            .ok_or_else(bad)
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
    };
    Ok(data)
}

fn flatten(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Array(items) => items.into_iter().for_each(|v| flatten(v, out)),
        scalar => out.push(scalar),
    }
}
