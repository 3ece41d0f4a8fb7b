//! The classifier: an ONNX model optimised and planned once by tract, its labels and its
//! preprocessing.
//!
//! Any model with one float NCHW input and one output of class logits works: the input shape is
//! pinned to `[1, 3, input_size, input_size]` before optimisation, and the output width must equal
//! the number of labels, which is checked at load time rather than discovered on the first
//! request. A loaded [`Classifier`] is immutable and shared (`Arc`) by every worker, and by every
//! replica when a local pool runs several services in one process.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use harness_core::wire::Prediction;
use tract_onnx::prelude::*;

use crate::config::Config;
use crate::error::Error;
use crate::preprocess::Preprocessing;

/// A loaded, optimised and warmed-up image classifier.
#[derive(Debug)]
pub struct Classifier {
    name: String,
    plan: Arc<TypedSimplePlan>,
    labels: Vec<String>,
    preprocessing: Preprocessing,
    top_k: usize,
}

/// Per-worker model state: tract's execution state, kept between runs of the same plan.
#[derive(Debug, Default)]
pub struct Session {
    state: Option<TypedSimpleState>,
}

impl Classifier {
    /// Loads the model and labels named by the configuration, checks that they fit together,
    /// and warms the model up with one run, so that the first request is not the slow one.
    pub fn load(config: &Config) -> Result<Self, Error> {
        let started = Instant::now();
        let preprocessing = config.preprocessing()?;
        let labels = read_labels(&config.labels)?;
        let plan = load_plan(&config.model, preprocessing.input_size())?;
        let classifier = Self::from_parts(
            config.model_name(),
            plan,
            labels,
            preprocessing,
            config.top_k as usize,
        )?;
        classifier.warm_up()?;
        tracing::info!(
            model = %classifier.name,
            path = %config.model.display(),
            classes = classifier.labels.len(),
            input_size = classifier.preprocessing.input_size(),
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded and warmed up"
        );
        Ok(classifier)
    }

    fn from_parts(
        name: String,
        plan: Arc<TypedSimplePlan>,
        labels: Vec<String>,
        preprocessing: Preprocessing,
        top_k: usize,
    ) -> Result<Self, Error> {
        let classes = output_width(&plan)?;
        if classes != labels.len() {
            return Err(Error::Model(format!(
                "the model has {classes} output classes but the labels file has {} lines",
                labels.len()
            )));
        }
        if top_k > classes {
            return Err(Error::Config(format!(
                "--top-k {top_k} exceeds the model's {classes} classes"
            )));
        }
        Ok(Self {
            name,
            plan,
            labels,
            preprocessing,
            top_k,
        })
    }

    fn warm_up(&self) -> Result<(), Error> {
        let input = vec![0.0; self.preprocessing.tensor_len()];
        self.logits(input, &mut Session::default()).map(drop)
    }

    /// The model's name in responses and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Class names, in output order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The preprocessing this model expects.
    pub fn preprocessing(&self) -> &Preprocessing {
        &self.preprocessing
    }

    /// Runs the model on one preprocessed input (`3 × side × side` values, channel-major) and
    /// returns the raw logits.
    pub fn logits(&self, input: Vec<f32>, session: &mut Session) -> Result<Vec<f32>, Error> {
        let side = self.preprocessing.input_size() as usize;
        let tensor: Tensor = tract_ndarray::Array4::from_shape_vec((1, 3, side, side), input)
            .map_err(|err| Error::unexpected("input tensor", err))?
            .into();
        let state = session.for_plan(&self.plan)?;
        let outputs = state
            .run(tvec![tensor.into()])
            .map_err(|source| Error::ModelRun {
                what: "model run",
                source,
            })?;
        let logits = outputs
            .first()
            .ok_or_else(|| Error::Internal("the model returned no output".to_owned()))?
            .try_as_plain_ram()
            .and_then(|view| view.as_slice::<f32>().map(<[f32]>::to_vec))
            .map_err(|source| Error::ModelRun {
                what: "model output",
                source,
            })?;
        Ok(logits)
    }

    /// The top-k classes of one preprocessed input, with softmax probabilities.
    pub fn predict(
        &self,
        input: Vec<f32>,
        session: &mut Session,
    ) -> Result<Vec<Prediction>, Error> {
        let probabilities = softmax(&self.logits(input, session)?);
        Ok(top_k(&probabilities, self.top_k)
            .into_iter()
            .map(|(class, score)| Prediction {
                label: self.labels[class].clone(),
                class_id: class as u32,
                score,
            })
            .collect())
    }
}

impl Session {
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

/// Reads the ONNX file, pins its input to `[1, 3, side, side]` f32, optimises and plans it.
fn load_plan(path: &Path, side: u32) -> Result<Arc<TypedSimplePlan>, Error> {
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
    model
        .with_input_fact(0, fact)
        .and_then(|model| model.into_optimized())
        .map_err(|err| {
            fail(
                &format!("input [1, 3, {side}, {side}] f32 does not fit"),
                err,
            )
        })?
        .into_runnable()
        .map_err(|err| fail("cannot plan", err))
}

/// Number of classes the plan outputs: the output's volume with batch 1.
fn output_width(plan: &TypedSimplePlan) -> Result<usize, Error> {
    let fact = plan.model().output_fact(0).map_err(Error::ModelOutput)?;
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

/// Class names, one per line; blank trailing lines are ignored.
fn read_labels(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Labels {
        path: path.to_owned(),
        source,
    })?;
    let mut labels: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
    while labels.last().is_some_and(String::is_empty) {
        labels.pop();
    }
    if labels.is_empty() {
        return Err(Error::Model(format!("{} has no labels", path.display())));
    }
    Ok(labels)
}

/// Probabilities from logits, computed in f64 after subtracting the maximum (no overflow).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

/// The `k` largest values with their indices, largest first; ties keep the lower index first.
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
    indexed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    indexed.truncate(k);
    indexed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn top_k_is_ordered_and_stable() {
        let v = [0.1, 0.5, 0.2, 0.5, 0.0];
        assert_eq!(top_k(&v, 3), vec![(1, 0.5), (3, 0.5), (2, 0.2)]);
        assert_eq!(top_k(&v, 10).len(), 5);
    }

    #[test]
    fn softmax_survives_huge_logits() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert_eq!(p, vec![0.5, 0.5, 0.0]);
    }

    proptest! {
        #[test]
        fn softmax_is_a_distribution_that_keeps_the_order(
            logits in proptest::collection::vec(-50.0f32..50.0, 1..100)
        ) {
            let p = softmax(&logits);
            let sum: f32 = p.iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-4);
            let top_logit = top_k(&logits, 1)[0].0;
            let top_p = top_k(&p, 1)[0];
            prop_assert!(p[top_logit] == top_p.1);
        }
    }

    #[test]
    fn labels_skip_trailing_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, "cat\ndog\n\n").unwrap();
        assert_eq!(read_labels(&path).unwrap(), vec!["cat", "dog"]);
        std::fs::write(&path, "\n").unwrap();
        assert!(read_labels(&path).is_err());
    }
}
