//! The model's signature: the names, datatypes and shapes of its inputs and outputs as the ONNX
//! graph declares them, read once from the file whichever runtime runs the model. The v2
//! metadata reports them, and a v2 request that sends the model's own input is checked
//! against them.

use std::path::Path;

use harness_core::oip::Datatype;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{ModelProto, ValueInfoProto};
use tract_onnx::prelude::Framework;

use crate::error::Error;

/// One input or output of the graph; `-1` in `shape` is a symbolic (variable) dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
}

/// The graph's inputs (initializers excluded) and outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// Reads the signature of the ONNX file at `path` (its protobuf only, no planning).
    pub fn read(path: &Path) -> Result<Self, Error> {
        let proto = tract_onnx::onnx()
            .proto_model_for_path(path)
            .map_err(|source| Error::ModelFile {
                what: "cannot read the graph of".to_owned(),
                path: path.to_owned(),
                source,
            })?;
        Self::from_proto(&proto).map_err(|what| Error::Model(format!("{}: {what}", path.display())))
    }

    fn from_proto(proto: &ModelProto) -> Result<Self, String> {
        let graph = proto.graph.as_ref().ok_or("the file has no graph")?;
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_str()))
            .map(spec)
            .collect::<Result<_, _>>()?;
        let outputs = graph.output.iter().map(spec).collect::<Result<_, _>>()?;
        Ok(Self { inputs, outputs })
    }

    /// The single input of a classifier.
    pub fn input(&self) -> Option<&TensorSpec> {
        self.inputs.first()
    }

    /// The single output of a classifier (its class logits).
    pub fn output(&self) -> Option<&TensorSpec> {
        self.outputs.first()
    }
}

fn spec(info: &ValueInfoProto) -> Result<TensorSpec, String> {
    let Some(TypeValue::TensorType(tensor)) = info.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("{:?} is not a tensor", info.name));
    };
    let datatype = datatype(tensor.elem_type)
        .ok_or_else(|| format!("{:?} has an unsupported element type", info.name))?;
    let shape = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Dim::DimValue(v)) if v >= 0 => v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TensorSpec {
        name: info.name.clone(),
        datatype,
        shape,
    })
}

/// The v2 datatype of an ONNX `TensorProto.DataType` code.
fn datatype(code: i32) -> Option<Datatype> {
    Some(match code {
        1 => Datatype::Fp32,
        2 => Datatype::Uint8,
        3 => Datatype::Int8,
        4 => Datatype::Uint16,
        5 => Datatype::Int16,
        6 => Datatype::Int32,
        7 => Datatype::Int64,
        8 => Datatype::Bytes,
        9 => Datatype::Bool,
        10 => Datatype::Fp16,
        11 => Datatype::Fp64,
        12 => Datatype::Uint32,
        13 => Datatype::Uint64,
        16 => Datatype::Bf16,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_model_declares_its_input_and_logits() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/efficientnet-lite0.onnx");
        let signature = Signature::read(&path).unwrap();
        let input = signature.input().unwrap();
        assert_eq!(input.datatype, Datatype::Fp32);
        assert_eq!(input.shape.len(), 4);
        assert_eq!(&input.shape[1..], &[3, 224, 224]);
        let output = signature.output().unwrap();
        assert_eq!(output.name, "logits");
        assert_eq!(output.shape.last(), Some(&1000));
    }
}
