//! The model under onnxruntime: one session per worker, built from the model file read once.
//!
//! `ort` runs a session through `&mut`, so workers cannot share one; each worker takes a
//! session of its own from a shared stock on its first request and gives it back when its
//! workspace is dropped. The stock is filled at load time, one warmed-up session per worker, so
//! that no request pays for building one. Each session runs on `--intra-op-threads` threads
//! (one by default: workers scale across cores, and a second thread per run would compete with
//! the other workers for the same cores).

use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::session::Session as OrtRun;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use crate::error::Error;

/// An onnxruntime model; immutable and shared by every worker.
#[derive(Debug, Clone)]
pub struct OrtModel {
    shared: Arc<Shared>,
}

struct Shared {
    bytes: Vec<u8>,
    side: usize,
    intra_op_threads: usize,
    /// Sessions built and not held by a worker.
    stock: Mutex<Vec<OrtRun>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("model_bytes", &self.bytes.len())
            .field("side", &self.side)
            .field("intra_op_threads", &self.intra_op_threads)
            .finish_non_exhaustive()
    }
}

/// A worker's onnxruntime session, given back to its model's stock on drop.
#[derive(Default)]
pub struct OrtSession {
    held: Option<(Arc<Shared>, OrtRun)>,
}

impl std::fmt::Debug for OrtSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtSession")
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl Drop for OrtSession {
    fn drop(&mut self) {
        if let Some((shared, session)) = self.held.take() {
            harness_core::sync::lock(&shared.stock).push(session);
        }
    }
}

/// Wraps an `ort` failure with the step that failed.
fn ort_error<E: Into<ort::Error>>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |source| Error::Onnxruntime {
        what,
        source: source.into(),
    }
}

/// A session option that onnxruntime refused.
fn options_error<E: Into<ort::Error>>(source: E) -> Error {
    ort_error("session options")(source)
}

impl OrtModel {
    /// Reads the model file and builds `sessions` sessions (at least one), each warmed up with
    /// one run. The library must be loaded ([`crate::runtime::select`]).
    pub fn load(
        path: &Path,
        side: u32,
        intra_op_threads: usize,
        sessions: usize,
    ) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::ModelRead {
            path: path.to_owned(),
            source,
        })?;
        let model = Self {
            shared: Arc::new(Shared {
                bytes,
                side: side as usize,
                intra_op_threads,
                stock: Mutex::new(Vec::new()),
            }),
        };
        let first = model.build().map_err(|err| match err {
            Error::Onnxruntime { source, .. } => Error::OrtModelFile {
                path: path.to_owned(),
                source,
            },
            other => other,
        })?;
        let (inputs, outputs) = (first.inputs().len(), first.outputs().len());
        if inputs != 1 || outputs != 1 {
            return Err(Error::Model(format!(
                "{} has {inputs} inputs and {outputs} outputs; a classifier has one of each",
                path.display()
            )));
        }
        harness_core::sync::lock(&model.shared.stock).push(first);
        for _ in 1..sessions {
            let session = model.build()?;
            harness_core::sync::lock(&model.shared.stock).push(session);
        }
        Ok(model)
    }

    /// Number of classes: the length of the output of a run on zeros (which also warms up every
    /// session of the stock).
    pub fn warm_up(&self) -> Result<usize, Error> {
        let input = vec![0.0; 3 * self.shared.side * self.shared.side];
        let mut logits = Vec::new();
        let stock: Vec<OrtRun> = std::mem::take(&mut *harness_core::sync::lock(&self.shared.stock));
        for session in stock {
            let mut held = OrtSession {
                held: Some((Arc::clone(&self.shared), session)),
            };
            self.run(&input, &mut held, &mut logits)?;
        }
        Ok(logits.len())
    }

    fn build(&self) -> Result<OrtRun, Error> {
        let shared = &self.shared;
        let builder = OrtRun::builder().map_err(options_error)?;
        let builder = builder
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(options_error)?;
        let builder = builder
            .with_intra_threads(shared.intra_op_threads)
            .map_err(options_error)?;
        let builder = builder.with_inter_threads(1).map_err(options_error)?;
        let builder = builder
            .with_parallel_execution(false)
            .map_err(options_error)?;
        // With more than one thread, idle threads would spin between operators and read as
        // busy CPU to the autoscaler.
        let mut builder = builder
            .with_intra_op_spinning(false)
            .map_err(options_error)?;
        builder
            .commit_from_memory(&shared.bytes)
            .map_err(ort_error("cannot build a session from the model"))
    }

    /// Runs the model on one input (`3 × side × side` values) and writes the logits to `logits`.
    pub fn run(
        &self,
        input: &[f32],
        session: &mut OrtSession,
        logits: &mut Vec<f32>,
    ) -> Result<(), Error> {
        let side = self.shared.side;
        let run = self.session(session)?;
        // A view of the worker's buffer: onnxruntime reads the input where it is.
        let tensor = TensorRef::from_array_view(([1usize, 3, side, side], input))
            .map_err(ort_error("input tensor"))?;
        let outputs = run
            .run(ort::inputs![tensor])
            .map_err(ort_error("model run"))?;
        let (_, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(ort_error("model output"))?;
        logits.clear();
        logits.extend_from_slice(values);
        Ok(())
    }

    /// The worker's session for this model: the one it holds, else one from the stock, else a
    /// new one (more workers than sessions at load, e.g. replicas sharing a model).
    fn session<'s>(&self, session: &'s mut OrtSession) -> Result<&'s mut OrtRun, Error> {
        let mine = session
            .held
            .as_ref()
            .is_some_and(|(shared, _)| Arc::ptr_eq(shared, &self.shared));
        if !mine {
            let stocked = harness_core::sync::lock(&self.shared.stock).pop();
            let run = match stocked {
                Some(run) => run,
                None => {
                    tracing::info!("building one more onnxruntime session for a new worker");
                    self.build()?
                }
            };
            // Dropping the old one gives it back to its own model.
            *session = OrtSession {
                held: Some((Arc::clone(&self.shared), run)),
            };
        }
        session
            .held
            .as_mut()
            .map(|(_, run)| run)
            .ok_or_else(|| Error::Internal("onnxruntime session missing".to_owned()))
    }
}
