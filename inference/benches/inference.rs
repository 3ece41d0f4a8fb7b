//! Printed benchmark of the inference pipeline on the photo pool, with its baselines measured in
//! the same run (the reference machine is shared and noisy: read the ratios).
//!
//! 1. Decode, and preprocessing with `fast_image_resize` (crop mapped onto the source, buffers
//!    reused) against the `image` crate's resize-then-crop.
//! 2. The model alone on one thread under tract, then the same model and preprocessing under
//!    onnxruntime (`benches/onnxruntime_baseline.py`), then tract again; the ratio uses both
//!    tract passes, so that drift in machine load hits both sides.
//! 3. End-to-end `POST /infer` throughput at saturation, per worker, through an in-process server
//!    on 127.0.0.1.
//!
//! Run: `cargo bench -p inference` (`BENCH_ROUNDS`, default 5, passes over the photos;
//! `PYTHON`, default `python3`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use harness_core::wire::InferResponse;
use inference::decode::{self, DecodeLimits};
use inference::model::Session;
use inference::preprocess::{self, Preprocessor};
use inference::{AppState, Classifier, Config};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Per-image samples in milliseconds.
#[derive(Debug, Default, Clone)]
struct Samples(Vec<f64>);

impl Samples {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.0.push(started.elapsed().as_secs_f64() * 1000.0);
        out
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }

    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn merged(&self, other: &Samples) -> Samples {
        Samples(self.0.iter().chain(&other.0).copied().collect())
    }

    fn row(&self, what: &str) {
        println!(
            "  {what:<44} mean {:>7.2}  median {:>7.2}  min {:>7.2} ms/image",
            self.mean(),
            self.median(),
            self.min()
        );
    }
}

struct Photo {
    name: String,
    bytes: Vec<u8>,
}

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

struct Preprocessing {
    decode: Samples,
    fast: Samples,
    reference: Samples,
    inputs: Vec<Vec<f32>>,
}

fn bench_preprocess(
    classifier: &Classifier,
    photos: &[Photo],
    rounds: usize,
) -> anyhow::Result<Preprocessing> {
    let limits = DecodeLimits::new(50_000_000);
    let spec = classifier.preprocessing();
    let mut pre = Preprocessor::new();
    let mut out = Preprocessing {
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
                let diff = input
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| f64::from((a - b).abs()))
                    .sum::<f64>()
                    / input.len() as f64;
                if diff > 0.02 {
                    bail!(
                        "{}: the two preprocessings disagree (mean |diff| {diff})",
                        photo.name
                    );
                }
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

fn bench_model(
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
            let predictions = once.time(|| classifier.predict(input, &mut session))?;
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

/// The onnxruntime baseline's JSON report, or why it could not run.
fn onnxruntime(photos: &[Photo], rounds: usize) -> anyhow::Result<Value> {
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

struct Throughput {
    workers: usize,
    requests: usize,
    per_second: f64,
    failures: usize,
    service: [Samples; 3],
}

/// Saturates an in-process server with `workers` workers: 2 × workers + 2 clients in closed
/// loops, so the queue never runs dry.
async fn bench_throughput(
    classifier: Arc<Classifier>,
    photos: &[Photo],
    workers: usize,
    requests: usize,
) -> anyhow::Result<Throughput> {
    let config = config(&["--workers", &workers.to_string(), "--queue-capacity", "64"])?;
    let state = AppState::with_classifier(&config, classifier)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/infer", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(inference::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(
        photos
            .iter()
            .map(|p| {
                let image = harness_core::image_payload::encode(&p.bytes);
                bytes::Bytes::from(serde_json::json!({ "image": image }).to_string())
            })
            .collect(),
    );
    let client = reqwest::Client::new();
    let run = |count: usize| {
        let (client, url, bodies) = (client.clone(), url.clone(), Arc::clone(&bodies));
        async move {
            let next = Arc::new(AtomicUsize::new(0));
            let mut clients = Vec::new();
            for _ in 0..2 * workers + 2 {
                let (client, url, bodies, next) = (
                    client.clone(),
                    url.clone(),
                    Arc::clone(&bodies),
                    Arc::clone(&next),
                );
                clients.push(tokio::spawn(async move {
                    let mut timings = Vec::new();
                    let mut failures = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        let response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(bodies[i % bodies.len()].clone())
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status().is_success() => {
                                if let Ok(body) = r.json::<InferResponse>().await {
                                    timings.push(body.timing_ms);
                                }
                            }
                            _ => failures += 1,
                        }
                    }
                    (timings, failures)
                }));
            }
            let mut all = Vec::new();
            let mut failures = 0;
            for c in clients {
                let (t, f) = c.await.unwrap_or_default();
                all.extend(t);
                failures += f;
            }
            (all, failures)
        }
    };
    run(2 * workers).await; // warm-up: connections, allocator, caches
    let started = Instant::now();
    let (timings, failures) = run(requests).await;
    let elapsed = started.elapsed();
    let _ = stop.send(());
    server.await??;
    let mut service: [Samples; 3] = Default::default();
    for t in timings {
        service[0].0.push(t.decode);
        service[1].0.push(t.preprocess);
        service[2].0.push(t.inference);
    }
    Ok(Throughput {
        workers,
        requests,
        per_second: requests as f64 / elapsed.as_secs_f64(),
        failures,
        service,
    })
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let cpus = inference::cpu_quota::usable_cpus().get();
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
    let started = Instant::now();
    let classifier = Arc::new(Classifier::load(&config(&[])?)?);
    println!(
        "model loaded, optimised and warmed up in {:.2?}",
        started.elapsed()
    );
    let photos = photos()?;
    println!(
        "photos: {}",
        photos
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    println!("\n[1] decode + preprocess (one thread)");
    let pre = bench_preprocess(&classifier, &photos, rounds)?;
    pre.decode.row("decode (image crate, to RGB8)");
    pre.fast
        .row("preprocess: fast_image_resize, crop-in-resize");
    pre.reference
        .row("preprocess: image crate resize, then crop");
    println!(
        "  preprocess speed-up: {:.1}x (image crate / fast_image_resize, means)",
        pre.reference.mean() / pre.fast.mean()
    );

    println!("\n[2] model only (one thread), tract vs onnxruntime");
    let (tract_a, top1) = bench_model(&classifier, &pre.inputs, rounds)?;
    tract_a.row("tract, pass 1");
    let ort = onnxruntime(&photos, rounds);
    let (tract_b, _) = bench_model(&classifier, &pre.inputs, rounds)?;
    tract_b.row("tract, pass 2 (after onnxruntime)");
    let tract = tract_a.merged(&tract_b);
    tract.row("tract, both passes");
    match &ort {
        Ok(report) => {
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
            let agree = photos
                .iter()
                .zip(&top1)
                .filter(|(p, (label, _))| report["top1"][&p.name]["label"] == label.as_str())
                .count();
            println!(
                "  top-1 agreement tract vs onnxruntime: {agree}/{}",
                photos.len()
            );
            for (photo, (label, score)) in photos.iter().zip(&top1) {
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
        Err(err) => println!("  onnxruntime baseline skipped: {err:#}"),
    }
    let pipeline = pre.decode.mean() + pre.fast.mean();
    println!(
        "  decode + preprocess = {:.0}% of tract model time (preprocess alone {:.0}%)",
        100.0 * pipeline / tract.mean(),
        100.0 * pre.fast.mean() / tract.mean()
    );

    println!("\n[3] end-to-end POST /infer at saturation (in-process server, 127.0.0.1)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut worker_counts = vec![1];
    if cpus > 1 {
        worker_counts.push(cpus);
    }
    let single_thread_rate = 1000.0 / (pipeline + tract.mean());
    for workers in worker_counts {
        let requests = (rounds * photos.len() * workers).max(20);
        let t = runtime.block_on(bench_throughput(
            Arc::clone(&classifier),
            &photos,
            workers,
            requests,
        ))?;
        println!(
            "  workers {}: {} requests, {:.1} req/s, {:.1} req/s per worker ({:.1} ms/request/worker), {} failed",
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
    println!(
        "  reference: one thread doing decode + preprocess + model back to back = {single_thread_rate:.1} images/s"
    );
    Ok(())
}
