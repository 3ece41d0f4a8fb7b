//! The dispatcher in front of a v2 (Open Inference Protocol) server: an in-test server that
//! speaks the protocol as Triton does (binary extension) and as MLServer does (base64 JSON),
//! answering with the decoded image's text as its label so the test can tell what arrived.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::*;
use dispatcher::EndpointSource;
use harness_core::oip::{self, InferenceRequest, InferenceResponse, Tensor};
use tokio::net::TcpListener;

/// What the server saw of each request: content type, binary header, requested outputs.
#[derive(Debug, Clone)]
struct Seen {
    content_type: String,
    binary: bool,
    outputs: Option<Vec<oip::RequestedOutput>>,
}

#[derive(Clone, Default)]
struct V2Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The first request for "flaky" gets a 503 (retried), later ones succeed.
    flaked: Arc<Mutex<bool>>,
}

async fn infer(State(server): State<V2Server>, headers: HeaderMap, body: Bytes) -> Response {
    let header_length = headers
        .get(oip::HEADER_CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let request = match InferenceRequest::decode(&body, header_length) {
        Ok(r) => r,
        Err(err) => return v2_error(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    server.seen.lock().expect("lock").push(Seen {
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        binary: header_length.is_some(),
        outputs: request.outputs.clone(),
    });
    let Some(Ok(images)) = request
        .inputs
        .iter()
        .find(|i| i.name == "image")
        .and_then(Tensor::bytes_elements)
    else {
        return v2_error(StatusCode::BAD_REQUEST, "no BYTES input named image");
    };
    let text = String::from_utf8_lossy(&images[0]).into_owned();
    if text == "flaky" && !std::mem::replace(&mut *server.flaked.lock().expect("lock"), true) {
        return v2_error(StatusCode::SERVICE_UNAVAILABLE, "busy");
    }
    if text.starts_with("bad") {
        return v2_error(StatusCode::BAD_REQUEST, "Invalid image: cannot decode");
    }
    // Asked for a classification: answer as Triton does, `score:index:label`.
    let classified = request.outputs.is_some();
    let label = if classified {
        format!("0.9:7:{text}")
    } else {
        text
    };
    let response = InferenceResponse {
        model_name: "toy".into(),
        model_version: None,
        id: None,
        parameters: None,
        outputs: vec![
            Tensor {
                name: "logits".into(),
                shape: vec![1, 2],
                datatype: oip::Datatype::Fp32,
                parameters: None,
                data: Some(oip::TensorData::Float(vec![0.0, 1.0])),
            },
            Tensor::bytes("label", vec![label.into_bytes()]),
        ],
    };
    axum::Json(response).into_response()
}

fn v2_error(status: StatusCode, message: &str) -> Response {
    let body = oip::ErrorBody {
        error: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

async fn start_v2_server() -> (String, V2Server) {
    let server = V2Server::default();
    let app = Router::new()
        .route("/v2/models/toy/ready", get(|| async { StatusCode::OK }))
        .route("/v2/models/toy/infer", post(infer))
        .with_state(server.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, server)
}

async fn through_dispatcher(extra: &[&str]) -> (Vec<(String, String, Option<String>)>, Vec<Seen>) {
    let (upstream, server) = start_v2_server().await;
    let records = Records::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let receiver = start_receiver(listener, records.clone());
    let report_url = receiver.url("/storeLatency");
    let mut args = vec![
        "--upstream-protocol",
        "v2",
        "--model-name",
        "toy",
        "--drain-rate",
        "50",
        "--retry-backoff",
        "10ms",
        // The retried 503 ejects the only endpoint; it comes back after this.
        "--eject-duration",
        "100ms",
        "--report-url",
        &report_url,
        "--report-interval",
        "50ms",
    ];
    args.extend_from_slice(extra);
    let dispatcher = start_dispatcher(&args, EndpointSource::Static(vec![upstream])).await;
    let items = ["espresso", "flaky", "bad-image"];
    for text in items {
        let image = harness_core::image_payload::encode(text.as_bytes());
        assert_eq!(
            enqueue(&dispatcher, &image, text).await,
            StatusCode::ACCEPTED
        );
    }
    let by_id = records.wait_for(items.len()).await;
    dispatcher.stop().await.expect("clean stop");
    receiver.stop().await.expect("receiver stops");
    let outcomes = by_id
        .into_iter()
        .map(|(id, r)| (id, r.outcome.to_string(), r.label))
        .collect();
    let seen = server.seen.lock().expect("lock").clone();
    (outcomes, seen)
}

fn expected(label: &str) -> Vec<(String, String, Option<String>)> {
    vec![
        ("bad-image".into(), "v2_400".into(), None),
        ("espresso".into(), "ok".into(), Some(label.into())),
        ("flaky".into(), "ok".into(), Some("flaky".into())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_extension_like_triton() {
    let (outcomes, seen) = through_dispatcher(&["--v2-classification-output", "logits"]).await;
    assert_eq!(outcomes, expected("espresso"));
    // Three items and one retry, every one in binary with a classification asked for.
    assert_eq!(seen.len(), 4, "{seen:?}");
    for s in &seen {
        assert!(s.binary, "{s:?}");
        assert_eq!(s.content_type, "application/octet-stream");
        let outputs = s.outputs.as_ref().expect("classification requested");
        assert_eq!(outputs[0].name, "logits");
        assert_eq!(
            outputs[0]
                .parameters
                .as_ref()
                .and_then(|p| p.get("classification")),
            Some(&serde_json::json!(1))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_json_like_mlserver() {
    let (outcomes, seen) = through_dispatcher(&["--v2-bytes", "base64"]).await;
    assert_eq!(outcomes, expected("espresso"));
    assert_eq!(seen.len(), 4, "{seen:?}");
    for s in &seen {
        assert!(!s.binary, "{s:?}");
        assert_eq!(s.content_type, "application/json");
        assert!(s.outputs.is_none(), "every output wanted");
    }
}
