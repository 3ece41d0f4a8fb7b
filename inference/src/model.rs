//! The classifier: an ONNX model under one of two runtimes (tract or onnxruntime, see
//! `runtime.rs`), its labels and its preprocessing.
//!
//! Any model with one float NCHW input of `[1, 3, input_size, input_size]` and one output of
//! class logits works: the output width must equal the number of labels, which is checked at
//! load time rather than discovered on the first request. A loaded [`Classifier`] is immutable
//! and shared (`Arc`) by every worker, and by every replica when a local pool runs several
//! services in one process.

use std::path::Path;
use std::time::Instant;

use harness_core::wire::Prediction;

use crate::config::Config;
use crate::error::Error;
use crate::ort_model::{OrtModel, OrtSession};
use crate::preprocess::Preprocessing;
use crate::runtime::{self, Runtime, Selection};
use crate::signature::Signature;
use crate::tract_model::{TractModel, TractSession};

/// A loaded, optimised and warmed-up image classifier.
#[derive(Debug)]
pub struct Classifier {
    name: String,
    engine: Engine,
    runtime: Selection,
    signature: Signature,
    labels: Vec<String>,
    preprocessing: Preprocessing,
    top_k: usize,
}

/// The model under the runtime that runs it.
#[derive(Debug)]
enum Engine {
    Tract(TractModel),
    Onnxruntime(OrtModel),
}

/// Per-worker model state, kept from one request to the next: the runtime's execution state
/// and the logits buffer.
#[derive(Debug, Default)]
pub struct Session {
    tract: TractSession,
    onnxruntime: OrtSession,
    logits: Vec<f32>,
}

impl Classifier {
    /// Picks the runtime (`--runtime`), loads the model and labels named by the configuration,
    /// checks that they fit together, and warms the model up, so that the first request is not
    /// the slow one.
    pub fn load(config: &Config) -> Result<Self, Error> {
        let started = Instant::now();
        let preprocessing = config.preprocessing()?;
        let labels = read_labels(&config.labels)?;
        let signature = Signature::read(&config.model)?;
        let selection = runtime::select(config.runtime, config.ort_dylib_path.as_deref())?;
        tracing::info!(
            runtime = selection.runtime.label(),
            version = %selection.version,
            reason = %selection.reason,
            "inference runtime selected"
        );
        let side = preprocessing.input_size();
        let engine = match selection.runtime {
            Runtime::Tract => Engine::Tract(TractModel::load(&config.model, side)?),
            Runtime::Onnxruntime => Engine::Onnxruntime(OrtModel::load(
                &config.model,
                side,
                config.intra_op_threads.get(),
                config.worker_count().get(),
            )?),
        };
        let classifier = Self::from_parts(
            config.model_name(),
            engine,
            selection,
            signature,
            labels,
            preprocessing,
            config.top_k as usize,
        )?;
        tracing::info!(
            model = %classifier.name,
            path = %config.model.display(),
            runtime = classifier.runtime.runtime.label(),
            classes = classifier.labels.len(),
            input_size = classifier.preprocessing.input_size(),
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded and warmed up"
        );
        Ok(classifier)
    }

    fn from_parts(
        name: String,
        engine: Engine,
        runtime: Selection,
        signature: Signature,
        labels: Vec<String>,
        preprocessing: Preprocessing,
        top_k: usize,
    ) -> Result<Self, Error> {
        let classes = match &engine {
            Engine::Tract(model) => model.output_width()?,
            // onnxruntime may leave the output shape symbolic: one run on zeros tells.
            Engine::Onnxruntime(model) => model.warm_up()?,
        };
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
        let classifier = Self {
            name,
            engine,
            runtime,
            signature,
            labels,
            preprocessing,
            top_k,
        };
        if matches!(classifier.engine, Engine::Tract(_)) {
            classifier.warm_up()?;
        }
        Ok(classifier)
    }

    fn warm_up(&self) -> Result<(), Error> {
        let input = vec![0.0; self.preprocessing.tensor_len()];
        self.logits(&input, &mut Session::default()).map(drop)
    }

    /// The model's name in responses and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runtime that runs the model, its version and why it was chosen.
    pub fn runtime(&self) -> &Selection {
        &self.runtime
    }

    /// The inputs and outputs the ONNX graph declares.
    pub fn signature(&self) -> &Signature {
        &self.signature
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
    pub fn logits(&self, input: &[f32], session: &mut Session) -> Result<Vec<f32>, Error> {
        self.run(input, session)?;
        Ok(session.logits.clone())
    }

    /// Runs the model into the session's logits buffer.
    fn run(&self, input: &[f32], session: &mut Session) -> Result<(), Error> {
        if input.len() != self.preprocessing.tensor_len() {
            return Err(Error::Internal(format!(
                "the model input has {} values, expected {}",
                input.len(),
                self.preprocessing.tensor_len()
            )));
        }
        match &self.engine {
            Engine::Tract(model) => model.run(input, &mut session.tract, &mut session.logits),
            Engine::Onnxruntime(model) => {
                model.run(input, &mut session.onnxruntime, &mut session.logits)
            }
        }
    }

    /// The top-k classes of one preprocessed input, with softmax probabilities.
    pub fn predict(&self, input: &[f32], session: &mut Session) -> Result<Vec<Prediction>, Error> {
        self.run(input, session)?;
        let probabilities = softmax(&session.logits);
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
    let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut indexed: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
    // The k best first (linear), then only those sorted: a total order, so the same result as
    // sorting everything.
    if k > 0 && k < indexed.len() {
        indexed.select_nth_unstable_by(k - 1, order);
        indexed.truncate(k);
    }
    indexed.sort_by(order);
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
