//! The onnxruntime baseline: `onnxruntime_baseline.py` runs the same model with the same
//! preprocessing in Python, and its JSON report is printed next to tract's figures.

use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::samples::Samples;
use crate::{Photo, root};

/// The onnxruntime baseline's JSON report, or why it could not run.
pub fn onnxruntime(photos: &[Photo], rounds: usize) -> anyhow::Result<Value> {
    let root = root();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .arg(root.join("inference/benches/onnxruntime_baseline.py"))
        .arg("--model")
        .arg(root.join("inference/model/efficientnet-lite0.onnx"))
        .arg("--labels")
        .arg(root.join("inference/model/imagenet-labels.txt"))
        .arg("--rounds")
        .arg(rounds.to_string())
        .args(photos.iter().map(|p| root.join("images").join(&p.name)))
        .output()
        .with_context(|| format!("running {python}"))?;
    if !output.status.success() {
        bail!(
            "{python} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Prints onnxruntime's model time, tract's ratio to it, and where the two disagree on top-1.
pub fn print_comparison(report: &Value, tract: &Samples, photos: &[Photo], top1: &[(String, f32)]) {
    let ms = |section: &str, stat: &str| report[section][stat].as_f64().unwrap_or(f64::NAN);
    println!(
        "  {:<44} mean {:>7.2}  median {:>7.2}  min {:>7.2} ms/image",
        format!(
            "onnxruntime {} (1 intra-op thread)",
            report["onnxruntime"].as_str().unwrap_or("?")
        ),
        ms("modelMs", "mean"),
        ms("modelMs", "median"),
        ms("modelMs", "min"),
    );
    // The minimum is the least disturbed by other load on a shared machine.
    println!(
        "  tract / onnxruntime: {:.2}x (means), {:.2}x (medians), {:.2}x (minimums)",
        tract.mean() / ms("modelMs", "mean"),
        tract.median() / ms("modelMs", "median"),
        tract.min() / ms("modelMs", "min")
    );
    println!(
        "  Pillow decode {:.2} ms + preprocess {:.2} ms/image (means), for reference",
        ms("decodeMs", "mean"),
        ms("preprocessMs", "mean")
    );
    print_top1(report, photos, top1);
}

/// This service's onnxruntime against Python's, same library, same thread count: the cost of
/// each binding (goal: within 1.03x).
pub fn print_binding(report: &Value, rust: &Samples) {
    let ms = |stat: &str| report["modelMs"][stat].as_f64().unwrap_or(f64::NAN);
    println!(
        "  onnxruntime, this service / Python: {:.3}x (means), {:.3}x (medians), {:.3}x (minimums)",
        rust.mean() / ms("mean"),
        rust.median() / ms("median"),
        rust.min() / ms("min")
    );
}

/// Top-1 agreement, then each photo's top-1 under both runtimes.
fn print_top1(report: &Value, photos: &[Photo], top1: &[(String, f32)]) {
    let agree = photos
        .iter()
        .zip(top1)
        .filter(|(p, (label, _))| report["top1"][&p.name]["label"] == label.as_str())
        .count();
    println!(
        "  top-1 agreement tract vs onnxruntime: {agree}/{}",
        photos.len()
    );
    for (photo, (label, score)) in photos.iter().zip(top1) {
        let theirs = &report["top1"][&photo.name];
        println!(
            "    {:<20} tract {:<18} {:>5.1}%   onnxruntime {:<18} {:>5.1}%",
            photo.name,
            label,
            score * 100.0,
            theirs["label"].as_str().unwrap_or("?"),
            theirs["score"].as_f64().unwrap_or(f64::NAN) * 100.0
        );
    }
}
