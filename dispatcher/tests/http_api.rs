//! `/enqueue` and the other routes, called through the router with `oneshot` (no socket, no
//! drain running, so accepted items stay queued and the queue can be inspected).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use dispatcher::{AppState, Config, app};
use harness_core::ApiErrorBody;
use harness_core::image_payload::encode;
use harness_core::wire::EnqueueResponse;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

fn state(args: &[&str]) -> AppState {
    let config = Config::try_parse_from(std::iter::once("dispatcher").chain(args.iter().copied()))
        .expect("arguments parse");
    AppState::new(config.validate().expect("valid config")).expect("state")
}

fn post_json(body: serde_json::Value) -> Request<Body> {
    Request::post("/enqueue")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn call(
    state: &AppState,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app(state.clone()).oneshot(req).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body.to_vec())
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ApiErrorBody>(body)
        .unwrap_or_else(|e| panic!("not an error body ({e}): {}", String::from_utf8_lossy(body)))
        .error
        .code
}

fn image(n: usize) -> String {
    encode(&vec![0xA5u8; n])
}

#[tokio::test]
async fn both_body_shapes_are_queued_with_ids() {
    let s = state(&[]);
    let (status, _, body) = call(&s, post_json(json!({"image": image(300), "id": "mine"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let accepted: EnqueueResponse = serde_json::from_slice(&body).expect("202 body");
    assert_eq!(
        accepted,
        EnqueueResponse {
            id: "mine".into(),
            queue_length: 1,
            instance_id: s.instance_id().to_owned(),
        }
    );
    // One random id per process: 32 hex digits, the same in /stats, new in another state.
    assert_eq!(s.instance_id().len(), 32);
    assert!(s.instance_id().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(s.stats().instance_id, s.instance_id());
    assert_ne!(state(&[]).instance_id(), s.instance_id());

    let legacy = json!({"message": {"imageBase64": image(300)}});
    let (status, _, body) = call(&s, post_json(legacy)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let accepted: EnqueueResponse = serde_json::from_slice(&body).expect("202 body");
    assert_eq!(accepted.queue_length, 2);
    uuid::Uuid::parse_str(&accepted.id).expect("a generated id is a UUID");

    let stats = s.stats();
    assert_eq!(stats.queue_length, 2);
    assert_eq!(stats.enqueued_total, 2);
    assert_eq!(
        stats.queue_bytes,
        2 * image(300).len() + "mine".len() + accepted.id.len()
    );
}

#[tokio::test]
async fn a_data_url_without_content_type_is_accepted() {
    let s = state(&[]);
    let body = json!({"image": format!("data:image/jpeg;base64,{}", image(30))});
    let req = Request::post("/enqueue")
        .body(Body::from(body.to_string()))
        .expect("request");
    let (status, _, _) = call(&s, req).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code_and_counted() {
    let s = state(&["--max-body-bytes", "2000"]);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post_json(json!({"image": "aGVsbG8*"})),
            StatusCode::BAD_REQUEST,
            "invalid_base64",
        ),
        (
            post_json(json!({"image": "a+b_"})),
            StatusCode::BAD_REQUEST,
            "invalid_base64",
        ),
        (
            post_json(json!({"image": ""})),
            StatusCode::BAD_REQUEST,
            "empty_image",
        ),
        (
            post_json(json!({"image": "data:text/plain;base64,aGk="})),
            StatusCode::BAD_REQUEST,
            "invalid_data_url",
        ),
        (
            post_json(json!({"id": "x"})),
            StatusCode::BAD_REQUEST,
            "missing_image",
        ),
        (
            post_json(json!({"image": "aGk=", "message": {"imageBase64": "aGk="}})),
            StatusCode::BAD_REQUEST,
            "ambiguous_image",
        ),
        (
            post_json(json!({"image": "aGk=", "id": ""})),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            post_json(json!({"img": "aGk="})),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Request::post("/enqueue")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Request::post("/enqueue")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(json!({"image": "aGk="}).to_string()))
                .expect("request"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post_json(json!({"image": image(3000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            Request::get("/nope").body(Body::empty()).expect("request"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Request::get("/enqueue")
                .body(Body::empty())
                .expect("request"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (req, want_status, want_code) in cases {
        let (status, _, body) = call(&s, req).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (want_status, want_code)
        );
    }
    let stats = s.stats();
    assert_eq!(stats.queue_length, 0, "nothing invalid was queued");
    assert_eq!(stats.rejected_total["invalid_base64"], 2);
    assert_eq!(stats.rejected_total["body_too_large"], 1);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let s = state(&["--queue-capacity", "2", "--drain-rate", "0.2"]);
    for _ in 0..2 {
        let (status, _, _) = call(&s, post_json(json!({"image": image(30)}))).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, headers, body) = call(&s, post_json(json!({"image": image(30)}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "queue_full");
    // One slot frees every 1 / 0.2 = 5 s.
    assert_eq!(headers[header::RETRY_AFTER], "5");
    let stats = s.stats();
    assert_eq!(stats.queue_length, 2);
    assert_eq!(stats.rejected_total["queue_full"], 1);
}

#[tokio::test]
async fn the_byte_bound_applies_too() {
    let s = state(&["--queue-max-bytes", "1000"]);
    let (status, _, _) = call(&s, post_json(json!({"image": image(600), "id": "a"}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, headers, body) =
        call(&s, post_json(json!({"image": image(600), "id": "b"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "queue_bytes_full");
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn health_readiness_stats_and_metrics() {
    let s = state(&["--drain-rate", "7.5"]);
    let get = |path: &str| Request::get(path).body(Body::empty()).expect("request");
    let (status, _, _) = call(&s, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    // No endpoint has been probed ready (no task runs in a oneshot test).
    let (status, _, body) = call(&s, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "no_ready_endpoint");

    call(&s, post_json(json!({"image": image(30)}))).await;
    let (status, _, body) = call(&s, get("/stats")).await;
    assert_eq!(status, StatusCode::OK);
    let stats: harness_core::wire::DispatcherStats = serde_json::from_slice(&body).expect("stats");
    assert_eq!(stats.drain_rate, 7.5);
    assert_eq!(stats.queue_length, 1);
    assert!(stats.accepting);

    let (status, headers, body) = call(&s, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).expect("utf-8");
    for line in [
        "dispatcher_queue_length 1",
        "dispatcher_enqueued_total 1",
        "dispatcher_drain_rate 7.5",
        "dispatcher_endpoints{state=\"ready\"} 0",
        "# TYPE dispatcher_queue_wait_seconds histogram",
        "# TYPE dispatcher_upstream_duration_seconds histogram",
        "# TYPE dispatcher_latency_seconds histogram",
        "dispatcher_in_flight 0",
        "dispatcher_retries_total 0",
        "dispatcher_report_failures_total 0",
        "dispatcher_report_dropped_total{reason=\"capacity\"} 0",
        "dispatcher_report_dropped_total{reason=\"retention\"} 0",
        "dispatcher_records_pulled_total 0",
        "dispatcher_outbox_length 0",
        "dispatcher_outbox_bytes 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[tokio::test]
async fn after_shutdown_begins_enqueue_answers_shutting_down() {
    let s = state(&[]);
    s.queue().stop_accepting();
    let (status, headers, body) = call(&s, post_json(json!({"image": image(30)}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "shutting_down");
    assert!(headers.contains_key(header::RETRY_AFTER));
    let (status, _, body) = call(&s, Request::get("/readyz").body(Body::empty()).expect("r")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "shutting_down");
}
