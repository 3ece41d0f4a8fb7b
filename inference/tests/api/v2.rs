//! The Open Inference Protocol routes through the router, without a socket: metadata, readiness,
//! inference in JSON, base64 and binary, the classification extension, refusals in the v2
//! shape, and the v2 request metrics.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use harness_core::image_payload::encode;
use harness_core::oip::{
    HEADER_CONTENT_LENGTH, InferenceRequest, InferenceResponse, RequestedOutput, Tensor,
    TensorData, top_label,
};
use http_body_util::BodyExt;
use inference::AppState;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{get, photo, ready_state, send};

const MODEL: &str = "efficientnet-lite0";

fn app() -> (AppState, axum::Router) {
    let state = ready_state(&[]);
    (state.clone(), inference::app(state))
}

fn post_json(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Sends a request and decodes the v2 answer, binary section included.
async fn infer(app: &axum::Router, request: Request<Body>) -> InferenceResponse {
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header_length = response
        .headers()
        .get(HEADER_CONTENT_LENGTH)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    InferenceResponse::decode(&bytes, header_length).unwrap()
}

#[tokio::test]
async fn metadata_and_readiness() {
    let (_, app) = app();
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/efficientnet-lite0/ready",
        "/v2/models/efficientnet-lite0/versions/1/ready",
    ] {
        assert_eq!(send(&app, get(path)).await.status, StatusCode::OK, "{path}");
    }
    let server = send(&app, get("/v2")).await.json;
    assert_eq!(server["name"], "inference");
    assert_eq!(
        server["extensions"],
        json!(["binary_tensor_data", "classification"])
    );
    let model = send(&app, get("/v2/models/efficientnet-lite0")).await.json;
    assert_eq!(model["platform"], "onnx");
    assert_eq!(model["versions"], json!(["1"]));
    assert_eq!(
        model["inputs"],
        json!([
            {"name": "image", "datatype": "BYTES", "shape": [-1]},
            {"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]},
        ])
    );
    assert_eq!(
        model["outputs"],
        json!([{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}])
    );
    let config = send(&app, get("/v2/models/efficientnet-lite0/versions/1/config")).await;
    assert_eq!(config.json["max_batch_size"], 16);
    let missing = send(&app, get("/v2/models/other")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json, json!({"error": "unknown model \"other\""}));
    let version = send(&app, get("/v2/models/efficientnet-lite0/versions/2")).await;
    assert_eq!(version.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn images_as_base64_json_give_logits_and_classes() {
    let (state, app) = app();
    let mut image = Tensor::bytes_base64(
        "image",
        vec![encode(&photo("coffee.png")), encode(&photo("camera.png"))],
    );
    image.shape = vec![2];
    let mut request = InferenceRequest::new(vec![image]);
    request.outputs = Some(vec![RequestedOutput::classification("logits", 2)]);
    let body = serde_json::to_value(&request).unwrap();
    let answer = infer(
        &app,
        post_json("/v2/models/efficientnet-lite0/infer", &body),
    )
    .await;
    assert_eq!(answer.model_name, MODEL);
    let classes = &answer.outputs[0];
    assert_eq!(classes.shape, vec![2, 2]);
    let Some(TensorData::Bytes(rows)) = &classes.data else {
        panic!("{classes:?}")
    };
    assert!(String::from_utf8_lossy(&rows[0]).ends_with(":967:espresso"));
    assert!(String::from_utf8_lossy(&rows[2]).ends_with(":tripod"));
    assert_eq!(
        top_label(&answer, Some("logits")).as_deref(),
        Some("espresso")
    );

    // No outputs named: the logits as they are.
    let plain = InferenceRequest::new(vec![Tensor::bytes_base64(
        "image",
        vec![encode(&photo("coffee.png"))],
    )]);
    let body = serde_json::to_value(&plain).unwrap();
    let answer = infer(
        &app,
        post_json("/v2/models/efficientnet-lite0/infer", &body),
    )
    .await;
    assert_eq!(answer.outputs[0].shape, vec![1, 1000]);
    assert_eq!(top_label(&answer, None).as_deref(), Some("967"));
    assert!(
        state
            .metrics()
            .render()
            .contains("inference_requests_total{outcome=\"ok\",protocol=\"v2\"} 2")
    );
}

#[tokio::test]
async fn the_binary_extension_both_ways() {
    let (_, app) = app();
    let mut request =
        InferenceRequest::new(vec![Tensor::bytes("image", vec![photo("coffee.png")])]);
    let mut wanted = RequestedOutput::classification("logits", 1);
    wanted
        .parameters
        .as_mut()
        .unwrap()
        .insert("binary_data".into(), true.into());
    request.outputs = Some(vec![wanted]);
    let message = request.encode_binary().unwrap();
    let http = Request::post("/v2/models/efficientnet-lite0/versions/1/infer")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(HEADER_CONTENT_LENGTH, message.header_length)
        .body(Body::from(message.body))
        .unwrap();
    let answer = infer(&app, http).await;
    assert_eq!(
        top_label(&answer, Some("logits")).as_deref(),
        Some("espresso")
    );
}

#[tokio::test]
async fn refusals_use_the_v2_shape_and_are_counted() {
    let (state, app) = app();
    let path = "/v2/models/efficientnet-lite0/infer";
    let image = |datatype: &str, shape: Value, data: Value| json!({"inputs": [{"name": "image", "datatype": datatype, "shape": shape, "data": data}]});
    let cases = [
        (json!({"inputs": 3}), StatusCode::BAD_REQUEST),
        (
            image("FP32", json!([1]), json!([1.0])),
            StatusCode::BAD_REQUEST,
        ),
        (
            image("BYTES", json!([2]), json!(["a"])),
            StatusCode::BAD_REQUEST,
        ),
        (
            image("BYTES", json!([17]), json!(vec!["x"; 17])),
            StatusCode::BAD_REQUEST,
        ),
        (
            image("BYTES", json!([1]), json!(["not an image"])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 2, 2],
                            "data": vec![0.0; 12]}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, status) in &cases {
        let reply = send(&app, post_json(path, body)).await;
        assert_eq!(reply.status, *status, "{body}: {}", reply.text);
        assert!(reply.json["error"].is_string(), "{body}: {}", reply.text);
    }
    let lying = Request::post(path)
        .header(HEADER_CONTENT_LENGTH, "999")
        .body(Body::from("{}"))
        .unwrap();
    let reply = send(&app, lying).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json["error"]
            .as_str()
            .unwrap()
            .contains("claims 999 bytes")
    );
    let text = state.metrics().render();
    assert!(
        text.contains(
            "inference_requests_total{outcome=\"invalid_inference_request\",protocol=\"v2\"} 7"
        ),
        "{text}"
    );
    // /infer keeps its own counter and its own error shape.
    assert!(text.contains("inference_requests_total{outcome=\"ok\",protocol=\"harness\"} 0"));
    let reply = send(&app, crate::support::post_infer("application/json", "{")).await;
    assert_eq!(reply.code(), "invalid_json");
}

#[tokio::test]
async fn a_full_pool_is_a_503_with_retry_after_in_the_v2_shape() {
    let state = ready_state(&["--workers", "1", "--queue-capacity", "0"]);
    let app = inference::app(state.clone());
    let metrics = state.metrics().clone();
    let release = crate::support::hold_workers(&state);
    crate::support::eventually("the worker is busy", || metrics.in_flight.get() == 1).await;
    let request = InferenceRequest::new(vec![Tensor::bytes_base64(
        "image",
        vec![encode(&photo("coffee.png"))],
    )]);
    let body = serde_json::to_value(&request).unwrap();
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        send(
            &app,
            post_json("/v2/models/efficientnet-lite0/infer", &body),
        ),
    )
    .await
    .expect("refused at once, not queued");
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    assert!(
        reply.json["error"]
            .as_str()
            .unwrap()
            .starts_with("overloaded")
    );
    drop(release);
    assert!(
        metrics
            .render()
            .contains("inference_requests_total{outcome=\"overloaded\",protocol=\"v2\"} 1")
    );
}
