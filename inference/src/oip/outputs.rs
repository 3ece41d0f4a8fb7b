//! The outputs of a v2 answer: the graph's output tensor as the model gives it (FP32
//! `[N, classes]`), or, when a requested output carries `"classification": K`, Triton's
//! classification extension: BYTES `[N, K]` of `score:index:label`, the K largest values of each
//! row (the raw output values, as Triton reports them), largest first. An output asked for with
//! `"binary_data": true`, or every output when the request says `"binary_data_output": true`,
//! travels in the binary section.

use harness_core::oip::binary::BINARY_DATA;
use harness_core::oip::label::CLASSIFICATION_PARAMETER;
use harness_core::oip::{
    Datatype, InferenceRequest, InferenceResponse, RequestedOutput, Tensor, TensorData,
};
use serde_json::Value;

use super::metadata::MODEL_VERSION;
use crate::error::Error;
use crate::model::{Classifier, top_k};

/// The request parameter asking for every output in binary.
const BINARY_DATA_OUTPUT: &str = "binary_data_output";

/// The logits of a batch, row-major: `n` rows of the model's classes.
#[derive(Debug)]
pub struct Batch {
    pub n: usize,
    pub logits: Vec<f32>,
}

/// An encoded answer: the body, and the JSON part's length when a binary section follows.
#[derive(Debug)]
pub struct Encoded {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

/// The answer to `request` from the logits of its batch, encoded.
pub fn answer(
    classifier: &Classifier,
    request: &InferenceRequest,
    batch: Batch,
) -> Result<Encoded, Error> {
    let output_name = classifier
        .signature()
        .output()
        .map_or("logits", |spec| spec.name.as_str());
    let all_binary = request
        .parameters
        .as_ref()
        .and_then(|p| p.get(BINARY_DATA_OUTPUT))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let wanted = match &request.outputs {
        Some(outputs) if !outputs.is_empty() => outputs.clone(),
        _ => vec![RequestedOutput {
            name: output_name.to_owned(),
            parameters: None,
        }],
    };
    let mut outputs = Vec::with_capacity(wanted.len());
    let mut binary = Vec::new();
    for output in &wanted {
        if output.name != output_name {
            return Err(Error::InferenceRequest(format!(
                "unknown output {:?}: this model has `{output_name}`",
                output.name
            )));
        }
        let tensor = match classification(output, classifier.labels().len())? {
            Some(k) => classified(classifier, &output.name, &batch, k),
            None => logits(&output.name, &batch),
        };
        if all_binary || flag(output, BINARY_DATA)? {
            binary.push(output.name.clone());
        }
        outputs.push(tensor);
    }
    let response = InferenceResponse {
        model_name: classifier.name().to_owned(),
        model_version: Some(MODEL_VERSION.to_owned()),
        id: request.id.clone(),
        parameters: None,
        outputs,
    };
    encode(response, &binary)
}

/// `K` of `"classification": K`, checked against the number of classes.
fn classification(output: &RequestedOutput, classes: usize) -> Result<Option<usize>, Error> {
    let Some(value) = parameter(output, CLASSIFICATION_PARAMETER) else {
        return Ok(None);
    };
    match value.as_u64().and_then(|k| usize::try_from(k).ok()) {
        Some(k @ 1..) if k <= classes => Ok(Some(k)),
        _ => Err(Error::InferenceRequest(format!(
            "output {:?}: `{CLASSIFICATION_PARAMETER}` must be 1 to {classes}, got {value}",
            output.name
        ))),
    }
}

/// A boolean parameter of a requested output; absent is false.
fn flag(output: &RequestedOutput, name: &str) -> Result<bool, Error> {
    match parameter(output, name) {
        None => Ok(false),
        Some(value) => value.as_bool().ok_or_else(|| {
            Error::InferenceRequest(format!(
                "output {:?}: `{name}` must be true or false, got {value}",
                output.name
            ))
        }),
    }
}

fn parameter<'a>(output: &'a RequestedOutput, name: &str) -> Option<&'a Value> {
    output.parameters.as_ref()?.get(name)
}

/// The output as the model gives it: FP32 `[N, classes]`.
fn logits(name: &str, batch: &Batch) -> Tensor {
    let classes = batch.logits.len() / batch.n.max(1);
    Tensor {
        name: name.to_owned(),
        shape: vec![batch.n as i64, classes as i64],
        datatype: Datatype::Fp32,
        parameters: None,
        data: Some(TensorData::Float(
            batch.logits.iter().map(|&v| f64::from(v)).collect(),
        )),
    }
}

/// The classification extension: BYTES `[N, k]` of `score:index:label`, largest first.
fn classified(classifier: &Classifier, name: &str, batch: &Batch, k: usize) -> Tensor {
    let labels = classifier.labels();
    let elements = batch
        .logits
        .chunks(labels.len().max(1))
        .flat_map(|row| top_k(row, k))
        .map(|(index, score)| format!("{score}:{index}:{}", labels[index]).into_bytes())
        .collect();
    Tensor {
        name: name.to_owned(),
        shape: vec![batch.n as i64, k as i64],
        datatype: Datatype::Bytes,
        parameters: None,
        data: Some(TensorData::Bytes(elements)),
    }
}

/// JSON, or JSON with the outputs named in `binary` in the binary section.
fn encode(response: InferenceResponse, binary: &[String]) -> Result<Encoded, Error> {
    if binary.is_empty() {
        let body = serde_json::to_vec(&response)
            .map_err(|err| Error::unexpected("encoding the v2 answer", err))?;
        return Ok(Encoded {
            body,
            header_length: None,
        });
    }
    let message = response
        .encode_binary(|tensor| binary.contains(&tensor.name))
        .map_err(|err| Error::unexpected("encoding the v2 answer", err))?;
    Ok(Encoded {
        body: message.body,
        header_length: Some(message.header_length),
    })
}
