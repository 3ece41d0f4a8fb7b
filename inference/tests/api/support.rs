//! Shared test fixtures: the real model loaded once per test binary, configs, photos and
//! request helpers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use clap::Parser;
use http_body_util::BodyExt;
use inference::{AppState, Classifier, Config};
use serde_json::Value;
use tower::ServiceExt;

/// A path relative to the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The service configuration with the repository's model and `extra` flags.
pub fn config(extra: &[&str]) -> Config {
    let model = repo_path("inference/model/efficientnet-lite0.onnx");
    let labels = repo_path("inference/model/imagenet-labels.txt");
    let mut args = vec![
        "inference".to_owned(),
        "--model".to_owned(),
        model.display().to_string(),
        "--labels".to_owned(),
        labels.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Config::try_parse_from(args).expect("test config parses")
}

/// The real classifier under tract (whatever the environment offers, so that these tests mean
/// the same everywhere), loaded once and shared by every test of this binary. `runtimes.rs`
/// runs onnxruntime.
pub fn classifier() -> Arc<Classifier> {
    static CLASSIFIER: OnceLock<Arc<Classifier>> = OnceLock::new();
    Arc::clone(CLASSIFIER.get_or_init(|| {
        let config = config(&["--runtime", "tract"]);
        Arc::new(Classifier::load(&config).expect("the repository's model loads"))
    }))
}

/// A ready service state with `extra` flags; the model is the shared one unless `--top-k` or
/// preprocessing flags call for another.
pub fn ready_state(extra: &[&str]) -> AppState {
    let config = config(extra);
    let classifier = if extra
        .iter()
        .any(|f| f.starts_with("--top-k") || f.starts_with("--runtime"))
    {
        Arc::new(Classifier::load(&config).expect("model loads"))
    } else {
        classifier()
    };
    AppState::with_classifier(&config, classifier).expect("state starts")
}

/// Bytes of a photo of the repository's `images/` pool or of the test fixtures.
pub fn photo(name: &str) -> Vec<u8> {
    let pool = repo_path("images").join(name);
    let path = if pool.exists() {
        pool
    } else {
        repo_path("inference/tests/fixtures").join(name)
    };
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `POST /infer` with `{"image": "<base64>"}`.
pub fn json_infer(image: &[u8]) -> Request<Body> {
    let body = serde_json::json!({"image": harness_core::image_payload::encode(image)});
    post_infer("application/json", body.to_string().into_bytes())
}

/// `POST /infer` with the given content type and body.
pub fn post_infer(content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/infer")
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("valid request")
}

/// `GET path`.
pub fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .body(Body::empty())
        .expect("valid request")
}

/// A response, its body read and parsed as JSON (or a JSON string of the text if not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }
}

/// Sends one request through the router, without a socket.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::String(text.clone()));
    Reply {
        status,
        headers,
        json,
        text,
    }
}

/// Polls `cond` until it holds; workers are real threads, so this waits in real time (briefly).
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Occupies every worker of `state` until the returned sender is dropped or sent to.
pub fn hold_workers(state: &AppState) -> std::sync::mpsc::Sender<()> {
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let hold = Arc::new(std::sync::Mutex::new(hold));
    for _ in 0..state.pool().workers().get() {
        let (state, hold) = (state.clone(), Arc::clone(&hold));
        tokio::spawn(async move {
            state
                .pool()
                .run(move |_| {
                    // Err: the sender is gone, which releases too.
                    let _ = hold.lock().map(|rx| rx.recv());
                })
                .await
        });
    }
    release
}
