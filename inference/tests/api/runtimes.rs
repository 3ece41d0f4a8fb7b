//! Both runtimes, same contract, same answers: tract and onnxruntime give the same top-1 on
//! every photo of `images/` with probabilities within 1e-3, and the service under onnxruntime
//! answers requests, bad ones included, as it does under tract.
//!
//! Needs the onnxruntime library (`ORT_DYLIB_PATH`); skipped loudly without it, a failure
//! under `CI`.

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use harness_core::wire::InferResponse;
use inference::decode::{self, DecodeLimits};
use inference::model::{Session, softmax, top_k};
use inference::preprocess::Preprocessor;
use inference::runtime::Runtime;
use inference::{AppState, Classifier, app};

use crate::support::{self, config, get, json_infer, photo, post_infer, repo_path, send};

/// The model under onnxruntime, loaded once; `None` (after a loud skip) without the library.
fn onnxruntime(test: &str) -> Option<Arc<Classifier>> {
    static CLASSIFIER: OnceLock<Arc<Classifier>> = OnceLock::new();
    let library = test_support::onnxruntime::library(test)?;
    Some(Arc::clone(CLASSIFIER.get_or_init(|| {
        let config = config(&[
            "--runtime",
            "onnxruntime",
            "--ort-dylib-path",
            &library.display().to_string(),
            "--workers",
            "2",
        ]);
        Arc::new(Classifier::load(&config).expect("the model loads under onnxruntime"))
    })))
}

/// Every photo of the repository's pool, by name.
fn pool() -> Vec<(String, Vec<u8>)> {
    let mut photos: Vec<(String, Vec<u8>)> = std::fs::read_dir(repo_path("images"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            ["png", "jpg", "jpeg"].contains(&ext)
        })
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    photos.sort();
    photos
}

#[test]
fn both_runtimes_give_the_same_top1_and_probabilities_on_every_photo() {
    let Some(ort) = onnxruntime("both_runtimes_give_the_same_top1_and_probabilities") else {
        return;
    };
    let tract = support::classifier();
    assert_eq!(tract.runtime().runtime, Runtime::Tract);
    assert_eq!(ort.runtime().runtime, Runtime::Onnxruntime);
    let photos = pool();
    assert!(photos.len() >= 5, "the photo pool is there");
    let (mut pre, mut on_tract, mut on_ort) =
        (Preprocessor::new(), Session::default(), Session::default());
    for (name, bytes) in photos {
        let image = decode::decode(&bytes, &DecodeLimits::new(50_000_000)).unwrap();
        let input = pre.run(tract.preprocessing(), &image).unwrap();
        let p_tract = softmax(&tract.logits(&input, &mut on_tract).unwrap());
        let p_ort = softmax(&ort.logits(&input, &mut on_ort).unwrap());
        let (best_tract, best_ort) = (top_k(&p_tract, 1)[0], top_k(&p_ort, 1)[0]);
        assert_eq!(best_tract.0, best_ort.0, "{name}: top-1 differs");
        let worst = p_tract
            .iter()
            .zip(&p_ort)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{name}: probabilities differ by {worst}");
        println!(
            "{name:<22} {:<20} tract {:.5} onnxruntime {:.5} max |diff| {worst:.2e}",
            tract.labels()[best_tract.0],
            best_tract.1,
            best_ort.1
        );
    }
}

#[tokio::test]
async fn the_service_under_onnxruntime_keeps_the_contract() {
    let Some(ort) = onnxruntime("the_service_under_onnxruntime_keeps_the_contract") else {
        return;
    };
    let state = AppState::with_classifier(&config(&["--workers", "2"]), ort).unwrap();
    let app = app(state);
    let reply = send(&app, json_infer(&photo("coffee.png"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let response: InferResponse = serde_json::from_value(reply.json).unwrap();
    assert_eq!(response.predictions[0].label, "espresso");
    assert!(response.timing_ms.inference > 0.0);
    let raw = send(&app, post_infer("image/jpeg", photo("coffee-cmyk.jpg"))).await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.text);
    for (body, code) in [
        (
            post_infer("image/png", b"not a png".to_vec()),
            "not_an_image",
        ),
        (
            post_infer("application/json", r#"{"image":"***"}"#),
            "invalid_base64",
        ),
    ] {
        let reply = send(&app, body).await;
        assert_eq!(reply.code(), code, "{}", reply.text);
    }
    let metrics = send(&app, get("/metrics")).await.text;
    let info = metrics
        .lines()
        .find(|l| l.starts_with("inference_runtime_info{"))
        .unwrap_or_default();
    assert!(info.contains(r#"runtime="onnxruntime""#), "{info}");
    assert!(!info.contains(r#"version="unknown""#), "{info}");
}

#[tokio::test]
async fn tract_reports_itself_in_the_metrics() {
    let app = app(support::ready_state(&[]));
    let metrics = send(&app, get("/metrics")).await.text;
    assert!(
        metrics.contains("inference_runtime_info{runtime=\"tract\",version=\"0.23\"} 1"),
        "{metrics}"
    );
}
