//! Printed benchmark of the inference pipeline on the photo pool, with its baselines measured in
//! the same run (the reference machine is shared and noisy: read the ratios).
//!
//! 1. Decode, and preprocessing with `fast_image_resize` (crop mapped onto the source, buffers
//!    reused) against the `image` crate's resize-then-crop.
//! 2. The model alone on one thread under tract, then the same model and preprocessing under
//!    onnxruntime (`benches/onnxruntime_baseline.py`), then tract again; the ratio uses both
//!    tract passes, so that drift in machine load hits both sides.
//!    With onnxruntime's library (`ORT_DYLIB_PATH`), this service's onnxruntime runtime too, on
//!    both sides of the Python run: nothing should be lost in the binding.
//! 3. End-to-end `POST /infer` throughput at saturation, per worker, through an in-process server
//!    on 127.0.0.1, under each runtime.
//! 4. Head to head with the Python peer (`benches/peer_service.py`, FastAPI + Uvicorn +
//!    onnxruntime): each server pinned to core 0 with one worker, the client on core 1.
//!
//! Layout: [`samples`] (timings and their printed line), [`stages`] (1 and 2, this service's
//! side), [`onnxruntime`] (2, the Python baseline), [`throughput`] (3), [`peer`] and
//! [`head_to_head`] (4).
//!
//! Run: `cargo bench -p inference` (`BENCH_ROUNDS`, default 5, passes over the photos;
//! `PYTHON`, default `python3`, needs onnxruntime, numpy and pillow, and for [4] fastapi and
//! uvicorn; `ORT_DYLIB_PATH` for this service's onnxruntime runtime). One command sets all up:
//! `scripts/install-onnxruntime.sh --bench` prints the library's path and makes
//! `.tools/bench-venv`.

mod head_to_head;
mod onnxruntime;
mod peer;
mod samples;
mod stages;
mod throughput;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use inference::{Classifier, Config};

use crate::samples::Samples;
use crate::stages::PreprocessTimes;

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One photo of the repository's `images/` pool.
struct Photo {
    name: String,
    bytes: Vec<u8>,
}

/// The PNG and JPEG photos of `images/`, by name.
fn photos() -> anyhow::Result<Vec<Photo>> {
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(root().join("images"))? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ["png", "jpg", "jpeg"].contains(&ext) {
            photos.push(Photo {
                name: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into(),
                bytes: std::fs::read(&path)?,
            });
        }
    }
    photos.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(photos)
}

/// The service configuration with the repository's model and `extra` flags.
fn config(extra: &[&str]) -> anyhow::Result<Config> {
    let root = root();
    let mut args = vec![
        "inference".to_owned(),
        "--model".into(),
        root.join("inference/model/efficientnet-lite0.onnx")
            .display()
            .to_string(),
        "--labels".into(),
        root.join("inference/model/imagenet-labels.txt")
            .display()
            .to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Ok(Config::try_parse_from(args)?)
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let cpus = inference::cpu_quota::usable_cpus().get();
    print_build(rounds, cpus);
    let started = Instant::now();
    let classifier = Arc::new(Classifier::load(&config(&["--runtime", "tract"])?)?);
    println!(
        "model loaded, optimised and warmed up in {:.2?} (tract)",
        started.elapsed()
    );
    let ort = onnxruntime_classifier()?;
    let photos = photos()?;
    println!(
        "photos: {}",
        photos
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let pre = preprocess_section(&classifier, &photos, rounds)?;
    let tract = model_section(&classifier, ort.as_deref(), &photos, &pre, rounds)?;
    let pipeline = pre.decode.mean() + pre.fast.mean();
    println!(
        "  decode + preprocess = {:.0}% of tract model time (preprocess alone {:.0}%)",
        100.0 * pipeline / tract.mean(),
        100.0 * pre.fast.mean() / tract.mean()
    );
    let single_thread_rate = 1000.0 / (pipeline + tract.mean());
    println!("\n[3] end-to-end POST /infer at saturation (in-process server, 127.0.0.1)");
    for classifier in std::iter::once(&classifier).chain(ort.as_ref()) {
        throughput_section(classifier, &photos, rounds, cpus)?;
    }
    println!(
        "  reference: one thread doing decode + preprocess + model back to back (tract) = {single_thread_rate:.1} images/s"
    );
    head_to_head_section(&photos, rounds, ort.is_some(), cpus)
}

/// This service's model under onnxruntime, when `ORT_DYLIB_PATH` names a library that loads.
fn onnxruntime_classifier() -> anyhow::Result<Option<Arc<Classifier>>> {
    let Some(library) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) else {
        println!(
            "onnxruntime runtime skipped: ORT_DYLIB_PATH is not set (scripts/install-onnxruntime.sh)"
        );
        return Ok(None);
    };
    let library = library.to_string_lossy().into_owned();
    let config = config(&[
        "--runtime",
        "onnxruntime",
        "--ort-dylib-path",
        &library,
        "--workers",
        "1",
    ])?;
    let classifier = Classifier::load(&config)?;
    println!(
        "onnxruntime {} loaded from {library}",
        classifier.runtime().version
    );
    Ok(Some(Arc::new(classifier)))
}

/// [4]: the head-to-head with the Python peer on a PNG and a JPEG photo.
fn head_to_head_section(
    photos: &[Photo],
    rounds: usize,
    with_ort: bool,
    cpus: usize,
) -> anyhow::Result<()> {
    println!(
        "\n[4] head to head, per core: each server pinned to core 0 with one worker (onnxruntime \
         on one intra-op thread), the client on core 1"
    );
    if cpus < 2 {
        println!("  skipped: needs two usable CPUs");
        return Ok(());
    }
    let chosen: Vec<&Photo> = ["coffee.png", "china.jpg"]
        .iter()
        .filter_map(|name| photos.iter().find(|p| p.name == *name))
        .collect();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(head_to_head::run(&chosen, rounds, &python, with_ort))
}

/// The header: rounds, CPUs, and the build that is being measured.
fn print_build(rounds: usize, cpus: usize) {
    println!("inference benchmark: {rounds} rounds over the photo pool, {cpus} usable CPUs");
    println!(
        "build: {} profile, AVX2 {} at compile time (x86-64-v3 when enabled)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if cfg!(target_feature = "avx2") {
            "enabled"
        } else {
            "not enabled"
        },
    );
}

/// [1]: decode and both preprocessings on one thread.
fn preprocess_section(
    classifier: &Classifier,
    photos: &[Photo],
    rounds: usize,
) -> anyhow::Result<PreprocessTimes> {
    println!("\n[1] decode + preprocess (one thread)");
    let pre = stages::bench_preprocess(classifier, photos, rounds)?;
    pre.decode.row("decode (image crate, to RGB8)");
    pre.fast
        .row("preprocess: fast_image_resize, crop-in-resize");
    pre.reference
        .row("preprocess: image crate resize, then crop");
    println!(
        "  preprocess speed-up: {:.1}x (image crate / fast_image_resize, means)",
        pre.reference.mean() / pre.fast.mean()
    );
    Ok(pre)
}

/// [2]: the model on one thread, tract and this service's onnxruntime on both sides of the
/// Python onnxruntime run; returns tract's samples of both passes.
fn model_section(
    classifier: &Classifier,
    ort: Option<&Classifier>,
    photos: &[Photo],
    pre: &PreprocessTimes,
    rounds: usize,
) -> anyhow::Result<Samples> {
    println!("\n[2] model only (one thread), tract vs onnxruntime");
    let (tract_a, top1) = stages::bench_model(classifier, &pre.inputs, rounds)?;
    tract_a.row("tract, pass 1");
    let rust_ort_a = ort
        .map(|c| stages::bench_model(c, &pre.inputs, rounds))
        .transpose()?;
    let python = onnxruntime::onnxruntime(photos, rounds);
    let rust_ort_b = ort
        .map(|c| stages::bench_model(c, &pre.inputs, rounds))
        .transpose()?;
    let (tract_b, _) = stages::bench_model(classifier, &pre.inputs, rounds)?;
    tract_b.row("tract, pass 2 (after onnxruntime)");
    let tract = tract_a.merged(&tract_b);
    tract.row("tract, both passes");
    let rust_ort = rust_ort_a
        .zip(rust_ort_b)
        .map(|((a, _), (b, _))| a.merged(&b));
    if let Some(samples) = &rust_ort {
        samples.row("onnxruntime in this service, both passes");
    }
    match &python {
        Ok(report) => {
            onnxruntime::print_comparison(report, &tract, photos, &top1);
            if let Some(samples) = &rust_ort {
                onnxruntime::print_binding(report, samples);
            }
        }
        Err(err) => println!("  onnxruntime baseline skipped: {err:#}"),
    }
    Ok(tract)
}

/// [3]: saturation with one worker, then with one per usable CPU.
fn throughput_section(
    classifier: &Arc<Classifier>,
    photos: &[Photo],
    rounds: usize,
    cpus: usize,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut worker_counts = vec![1];
    if cpus > 1 {
        worker_counts.push(cpus);
    }
    for workers in worker_counts {
        let requests = (rounds * photos.len() * workers).max(20);
        let t = runtime.block_on(throughput::bench_throughput(
            Arc::clone(classifier),
            photos,
            workers,
            requests,
        ))?;
        println!(
            "  {} workers {}: {} requests, {:.1} req/s, {:.1} req/s per worker ({:.1} ms/request/worker), {} failed",
            classifier.runtime().runtime.label(),
            t.workers,
            t.requests,
            t.per_second,
            t.per_second / t.workers as f64,
            1000.0 * t.workers as f64 / t.per_second,
            t.failures
        );
        println!(
            "    inside the service: decode {:.2}, preprocess {:.2}, model {:.2} ms (means)",
            t.service[0].mean(),
            t.service[1].mean(),
            t.service[2].mean()
        );
    }
    Ok(())
}
