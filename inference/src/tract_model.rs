//! The model under tract: the ONNX file optimised and planned once, and each worker's execution
//! state.
//!
//! The input shape is pinned to `[1, 3, side, side]` before optimisation, so that tract plans
//! for exactly the tensor the preprocessing produces.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::Error;

/// An optimised, planned tract model; immutable and shared by every worker.
#[derive(Debug)]
pub struct TractModel {
    plan: Arc<TypedSimplePlan>,
    side: usize,
}

/// Per-worker tract state, kept between runs of the same plan.
#[derive(Debug, Default)]
pub struct TractSession {
    state: Option<TypedSimpleState>,
}

impl TractModel {
    /// Reads the ONNX file, pins its input to `[1, 3, side, side]` f32, optimises and plans it.
    pub fn load(path: &Path, side: u32) -> Result<Self, Error> {
        let fail = |what: &str, source: TractError| Error::ModelFile {
            what: what.to_owned(),
            path: path.to_owned(),
            source,
        };
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|err| fail("cannot read", err))?;
        let (inputs, outputs) = (model.inputs.len(), model.outputs.len());
        if inputs != 1 || outputs != 1 {
            return Err(Error::Model(format!(
                "{} has {inputs} inputs and {outputs} outputs; a classifier has one of each",
                path.display()
            )));
        }
        let side = side as usize;
        let fact = InferenceFact::dt_shape(f32::datum_type(), [1, 3, side, side]);
        let plan = model
            .with_input_fact(0, fact)
            .and_then(|model| model.into_optimized())
            .map_err(|err| {
                fail(
                    &format!("input [1, 3, {side}, {side}] f32 does not fit"),
                    err,
                )
            })?
            .into_runnable()
            .map_err(|err| fail("cannot plan", err))?;
        Ok(Self { plan, side })
    }

    /// Number of classes the plan outputs: the output's volume with batch 1.
    pub fn output_width(&self) -> Result<usize, Error> {
        let fact = self
            .plan
            .model()
            .output_fact(0)
            .map_err(Error::ModelOutput)?;
        let shape = fact.shape.as_concrete().ok_or_else(|| {
            Error::Model(format!("the output shape {:?} is not concrete", fact.shape))
        })?;
        if fact.datum_type != f32::datum_type() || shape.first().is_some_and(|&b| b != 1) {
            return Err(Error::Model(format!(
                "expected f32 logits of shape [1, classes], got {:?} {shape:?}",
                fact.datum_type
            )));
        }
        Ok(shape.iter().product())
    }

    /// Runs the plan on one input (`3 × side × side` values) and writes the logits to `logits`.
    pub fn run(
        &self,
        input: &[f32],
        session: &mut TractSession,
        logits: &mut Vec<f32>,
    ) -> Result<(), Error> {
        let side = self.side;
        // tract wants its own aligned buffer: one copy of the input (0.6 MB, tens of µs).
        let tensor =
            Tensor::from_shape(&[1, 3, side, side], input).map_err(|source| Error::ModelRun {
                what: "input tensor",
                source,
            })?;
        let state = session.for_plan(&self.plan)?;
        let outputs = state
            .run(tvec![tensor.into()])
            .map_err(|source| Error::ModelRun {
                what: "model run",
                source,
            })?;
        let values = outputs
            .first()
            .ok_or_else(|| Error::Internal("the model returned no output".to_owned()))?
            .try_as_plain_ram()
            .and_then(|view| view.as_slice::<f32>())
            .map_err(|source| Error::ModelRun {
                what: "model output",
                source,
            })?;
        logits.clear();
        logits.extend_from_slice(values);
        Ok(())
    }
}

impl TractSession {
    /// The execution state for `plan`, created on first use (or when the plan changes).
    fn for_plan(&mut self, plan: &Arc<TypedSimplePlan>) -> Result<&mut TypedSimpleState, Error> {
        let stale = self
            .state
            .as_ref()
            .is_none_or(|state| !Arc::ptr_eq(state.plan(), plan));
        if stale {
            let state = plan.spawn().map_err(|source| Error::ModelRun {
                what: "model state",
                source,
            })?;
            self.state = Some(state);
        }
        self.state
            .as_mut()
            .ok_or_else(|| Error::Internal("model state missing".to_owned()))
    }
}
