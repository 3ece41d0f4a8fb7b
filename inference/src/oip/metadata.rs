//! What the server and its model say about themselves: `GET /v2`, `GET /v2/models/{m}` and the
//! Triton-style `GET /v2/models/{m}/config`, read from the ONNX graph.
//!
//! The model takes one image per run, but the server runs a batch one item at a time (up to
//! [`MAX_BATCH`]), so the batch dimension, the graph's first, is reported as `-1`. Beside the
//! graph's own input, the model takes [`IMAGE_INPUT`]: BYTES `[N]`, each an encoded image.

use harness_core::oip::{Datatype, ModelMetadata, ServerMetadata, TensorMetadata};
use serde_json::{Value, json};

use crate::model::Classifier;
use crate::signature::TensorSpec;

/// The only model version served.
pub const MODEL_VERSION: &str = "1";

/// The input that takes encoded images (any format `/infer` takes), one per BYTES element.
pub const IMAGE_INPUT: &str = "image";

/// The most items one request may carry: each runs on the same worker, one after another.
pub const MAX_BATCH: usize = 16;

/// The extensions this server implements.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data", "classification"];

/// `GET /v2`.
pub fn server() -> ServerMetadata {
    ServerMetadata {
        name: "inference".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        extensions: EXTENSIONS.iter().map(|&e| e.to_owned()).collect(),
    }
}

/// `GET /v2/models/{m}`: the image input, then the graph's inputs and outputs, batch `-1`.
pub fn model(classifier: &Classifier) -> ModelMetadata {
    let signature = classifier.signature();
    let image = TensorMetadata {
        name: IMAGE_INPUT.to_owned(),
        datatype: Datatype::Bytes,
        shape: vec![-1],
    };
    ModelMetadata {
        name: classifier.name().to_owned(),
        versions: Some(vec![MODEL_VERSION.to_owned()]),
        platform: "onnx".to_owned(),
        inputs: std::iter::once(image)
            .chain(signature.inputs.iter().map(batched))
            .collect(),
        outputs: signature.outputs.iter().map(batched).collect(),
    }
}

/// A graph tensor with its first (batch) dimension variable.
pub fn batched(spec: &TensorSpec) -> TensorMetadata {
    let mut shape = spec.shape.clone();
    if let Some(batch) = shape.first_mut() {
        *batch = -1;
    }
    TensorMetadata {
        name: spec.name.clone(),
        datatype: spec.datatype,
        shape,
    }
}

/// `GET /v2/models/{m}/config`, in Triton's model configuration form: `max_batch_size`, and
/// `dims` without the batch dimension.
pub fn config(classifier: &Classifier) -> Value {
    let signature = classifier.signature();
    let entry = |spec: &TensorSpec| {
        json!({
            "name": spec.name,
            "data_type": triton_type(spec.datatype),
            "dims": spec.shape.iter().skip(1).collect::<Vec<_>>(),
        })
    };
    // Triton's way of saying `[N]` under batching: dims [1], reshaped to [].
    let image = json!({
        "name": IMAGE_INPUT,
        "data_type": "TYPE_STRING",
        "dims": [1],
        "reshape": {"shape": []},
    });
    let inputs: Vec<Value> = std::iter::once(image)
        .chain(signature.inputs.iter().map(entry))
        .collect();
    json!({
        "name": classifier.name(),
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": MAX_BATCH,
        "input": inputs,
        "output": signature.outputs.iter().map(entry).collect::<Vec<_>>(),
    })
}

/// Triton's configuration name of a datatype (`TYPE_FP32`, `TYPE_STRING` for BYTES).
fn triton_type(datatype: Datatype) -> String {
    match datatype {
        Datatype::Bytes => "TYPE_STRING".to_owned(),
        other => format!("TYPE_{}", other.as_str()),
    }
}
