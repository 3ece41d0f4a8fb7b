//! The stages measured alone on one thread: decode, the two preprocessings, the model.
//!
//! Each measurement makes one warm-up pass over the photos (round 0, whose times are dropped)
//! before `rounds` timed passes.

use anyhow::bail;
use inference::Classifier;
use inference::decode::{self, DecodeLimits};
use inference::model::Session;
use inference::preprocess::{self, Preprocessor};

use crate::Photo;
use crate::samples::Samples;

/// Times of decode and of both preprocessings, and the model inputs they produced.
pub struct PreprocessTimes {
    pub decode: Samples,
    pub fast: Samples,
    pub reference: Samples,
    pub inputs: Vec<Vec<f32>>,
}

/// Decodes and preprocesses every photo with `fast_image_resize` and with the `image` crate's
/// resize-then-crop, checking on the warm-up pass that the two agree.
pub fn bench_preprocess(
    classifier: &Classifier,
    photos: &[Photo],
    rounds: usize,
) -> anyhow::Result<PreprocessTimes> {
    let limits = DecodeLimits::new(50_000_000);
    let spec = classifier.preprocessing();
    let mut pre = Preprocessor::new();
    let mut out = PreprocessTimes {
        decode: Samples::default(),
        fast: Samples::default(),
        reference: Samples::default(),
        inputs: Vec::new(),
    };
    for round in 0..=rounds {
        for photo in photos {
            let mut decode_ms = Samples::default();
            let image = decode_ms.time(|| decode::decode(&photo.bytes, &limits))?;
            let mut fast_ms = Samples::default();
            let input = fast_ms.time(|| pre.run(spec, &image))?;
            let mut reference_ms = Samples::default();
            let reference = reference_ms.time(|| preprocess::reference(spec, &image));
            if round == 0 {
                // Warm-up pass: keep the inputs, not the times.
                check_agreement(photo, &input, &reference)?;
                out.inputs.push(input);
                continue;
            }
            out.decode.0.extend(decode_ms.0);
            out.fast.0.extend(fast_ms.0);
            out.reference.0.extend(reference_ms.0);
        }
    }
    Ok(out)
}

/// Fails when the fast preprocessing strays from the reference one (a bug, not noise).
fn check_agreement(photo: &Photo, input: &[f32], reference: &[f32]) -> anyhow::Result<()> {
    let diff = input
        .iter()
        .zip(reference)
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / input.len() as f64;
    if diff > 0.02 {
        bail!(
            "{}: the two preprocessings disagree (mean |diff| {diff})",
            photo.name
        );
    }
    Ok(())
}

/// Times the model alone on `inputs`; also returns the top-1 class and score of each input.
pub fn bench_model(
    classifier: &Classifier,
    inputs: &[Vec<f32>],
    rounds: usize,
) -> anyhow::Result<(Samples, Vec<(String, f32)>)> {
    let mut session = Session::default();
    let mut samples = Samples::default();
    let mut top1 = Vec::new();
    for round in 0..=rounds {
        for input in inputs {
            let input = input.clone();
            let mut once = Samples::default();
            let predictions = once.time(|| classifier.predict(&input, &mut session))?;
            if round == 0 {
                let best = &predictions[0];
                top1.push((best.label.clone(), best.score));
            } else {
                samples.0.extend(once.0);
            }
        }
    }
    Ok((samples, top1))
}
