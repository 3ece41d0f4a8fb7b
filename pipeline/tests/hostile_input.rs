//! Hostile input against every service and every HTTP entry point that takes input: one table
//! whose rows say which service and route, what is sent, and what that service's README
//! promises for it (status and stable error `code`, or a correct classification for a valid
//! but unusual image).
//!
//! Every row goes through the service's real router with `oneshot`. Limits that hyper itself
//! enforces (header size and count) and bodies that only a real connection can deliver in
//! pieces are sent again over a socket to each service started by its crate's entry point.
//! Decompression bombs have their own test, which measures time per bomb and the growth of the
//! process's peak resident memory (`VmHWM`). The tests of this file run one at a time (the
//! memory measurement is process-wide), behind [`SERIAL`].
//!
//! Run with `--nocapture` to see the table with what each row got.

// Helpers outside #[test] functions unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

#[path = "hostile_input/check.rs"]
mod check;
#[path = "hostile_input/corpus.rs"]
mod corpus;
#[path = "hostile_input/raw_http.rs"]
mod raw_http;
#[path = "hostile_input/services.rs"]
mod services;

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use futures::stream;
use harness_core::image_payload::encode;
use serde_json::json;

use check::{Expect, Row};
use corpus::{BOMB_SIDE, HUGE_BODY_BYTES, photo};
use raw_http::{Upload, exchange};
use services::{Routers, Servers, Service, TOKEN};

/// The tests of this file one at a time: the bomb test's memory measurement covers the whole
/// process, and several 50 MB bodies at once would only measure the test itself.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Loose bound for refusing one bomb: the header check takes microseconds, decoding the bomb
/// would take seconds. A guard check, not a performance target.
const BOMB_TIME_LIMIT: Duration = Duration::from_secs(1);

/// Bound on the growth of peak RSS while the bombs are refused (decoding one would need
/// 0.9 to 2.7 GB).
const BOMB_MEMORY_LIMIT: u64 = 200 * 1024 * 1024;

// ------------------------------------------------------------------------ requests

fn request(method: Method, uri: &str, content_type: Option<&[u8]>, body: Body) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(content_type).unwrap(),
        );
    }
    builder.body(body).unwrap()
}

fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    request(
        Method::POST,
        uri,
        Some(content_type.as_bytes()),
        body.into(),
    )
}

fn get(uri: &str) -> Request<Body> {
    request(Method::GET, uri, None, Body::empty())
}

/// With the control endpoints' bearer token.
fn authorized(mut request: Request<Body>) -> Request<Body> {
    let value = HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
    request.headers_mut().insert(header::AUTHORIZATION, value);
    request
}

fn with_header(
    mut request: Request<Body>,
    name: header::HeaderName,
    value: &[u8],
) -> Request<Body> {
    let value = HeaderValue::from_bytes(value).unwrap();
    request.headers_mut().insert(name, value);
    request
}

/// `{"image": "<base64 of bytes>"}`.
fn image_json(bytes: &[u8]) -> String {
    json!({ "image": encode(bytes) }).to_string()
}

/// The 50 MB body with its length declared up front.
fn huge_declared(uri: &str, content_type: &str) -> Request<Body> {
    let mut request = post(uri, content_type, corpus::huge_body());
    let length = HeaderValue::from(HUGE_BODY_BYTES);
    request.headers_mut().insert(header::CONTENT_LENGTH, length);
    request
}

/// The 50 MB body in 1 MB chunks, no length: the limit must trip while reading.
fn huge_streamed(uri: &str, content_type: &str) -> Request<Body> {
    let body = corpus::huge_body();
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..body.len())
        .step_by(1024 * 1024)
        .map(|at| Ok(body.slice(at..(at + 1024 * 1024).min(body.len()))))
        .collect();
    post(uri, content_type, Body::from_stream(stream::iter(chunks)))
}

fn refused(status: u16, code: &'static str) -> Expect {
    Expect::Refused(StatusCode::from_u16(status).unwrap(), code)
}

// --------------------------------------------------------------------------- the table

/// `POST /infer` (README "Errors"): 400 for bodies that are not JSON or not base64, 413 over
/// `--max-body-bytes`, 415 for other media types, 422 for the wrong JSON shape and for bytes
/// that are not a decodable image. Valid images in any supported encoding are classified.
#[rustfmt::skip] // one row a line: a table
fn inference_rows(label: &str) -> Vec<Row> {
    use Service::Inference as S;
    let same = || Expect::SameLabel(label.to_owned());
    let gif = corpus::animated_gif();
    assert_eq!(corpus::gif_frames(&gif), 2, "the GIF is animated");
    let random = corpus::random_bytes(4096);
    vec![
        Row::new(S, "empty JSON body", post("/infer", "application/json", ""), refused(400, "empty_body")),
        Row::new(S, "empty raw body", post("/infer", "image/png", ""), refused(400, "empty_body")),
        Row::new(S, "random bytes as image/jpeg", post("/infer", "image/jpeg", random.clone()), refused(422, "not_an_image")),
        Row::new(S, "random bytes as JSON", post("/infer", "application/json", random.clone()), refused(400, "invalid_json")),
        Row::new(S, "random bytes as base64", post("/infer", "application/json", image_json(&random)), refused(422, "not_an_image")),
        Row::new(S, "text with an image content type", post("/infer", "image/png", "this is a text file named cat.png"), refused(422, "not_an_image")),
        Row::new(S, "text in a data:image/jpeg URL", post("/infer", "application/json", json!({"image": format!("data:image/jpeg;base64,{}", encode(b"just text"))}).to_string()), refused(422, "not_an_image")),
        Row::new(S, "truncated JPEG, raw", post("/infer", "image/jpeg", corpus::truncated_jpeg()), refused(422, "invalid_image")),
        Row::new(S, "truncated JPEG, base64", post("/infer", "application/json", image_json(&corpus::truncated_jpeg())), refused(422, "invalid_image")),
        Row::new(S, "16-bit RGB PNG", post("/infer", "image/png", corpus::coffee_16_bit()), same()),
        Row::new(S, "grayscale PNG", post("/infer", "image/png", corpus::coffee_gray()), same()),
        Row::new(S, "CMYK JPEG", post("/infer", "image/jpeg", photo("coffee-cmyk.jpg")), same()),
        Row::new(S, "RGBA PNG with varying alpha", post("/infer", "application/json", image_json(&corpus::coffee_alpha())), same()),
        Row::new(S, "animated GIF, 2 frames", post("/infer", "image/gif", gif), same()),
        Row::new(S, "1x1 PNG", post("/infer", "image/png", corpus::one_pixel()), Expect::Classified),
        Row::new(S, "8000x2 PNG", post("/infer", "image/png", corpus::strip(8000, 2)), Expect::Classified),
        Row::new(S, "100000x1 PNG", post("/infer", "image/png", corpus::strip(100_000, 1)), Expect::Classified),
        Row::new(S, "1x100000 PNG", post("/infer", "image/png", corpus::strip(1, 100_000)), Expect::Classified),
        Row::new(S, "PNG declaring 0x0", post("/infer", "image/png", corpus::png_header_bomb(0)), refused(422, "invalid_image")),
        Row::new(S, "GIF header only", post("/infer", "image/gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()), refused(422, "invalid_image")),
        Row::new(S, "TIFF", post("/infer", "image/tiff", b"II*\x00\x08\x00\x00\x00".to_vec()), refused(422, "not_an_image")),
        Row::new(S, "WebP truncated", post("/infer", "image/webp", { let w = corpus::encode(corpus::coffee(), image::ImageFormat::WebP); w[..w.len()/3].to_vec() }), refused(422, "invalid_image")),
        Row::new(S, "BMP truncated", post("/infer", "image/bmp", { let w = corpus::encode(corpus::coffee(), image::ImageFormat::Bmp); w[..w.len()/3].to_vec() }), refused(422, "invalid_image")),
        Row::new(S, "2x8000 PNG", post("/infer", "application/json", image_json(&corpus::strip(2, 8000))), Expect::Classified),
        Row::new(S, "50 MB raw body, declared", huge_declared("/infer", "image/jpeg"), refused(413, "payload_too_large")),
        Row::new(S, "50 MB raw body, streamed", huge_streamed("/infer", "application/octet-stream"), refused(413, "payload_too_large")),
        Row::new(S, "50 MB JSON body, streamed", huge_streamed("/infer", "application/json"), refused(413, "payload_too_large")),
        Row::new(S, "100 000 nested arrays", post("/infer", "application/json", corpus::nested_json("", 100_000)), refused(422, "invalid_request")),
        Row::new(S, "100 000 nested arrays in image", post("/infer", "application/json", corpus::nested_json(r#"{"image":"#, 100_000)), refused(400, "invalid_json")),
        Row::new(S, "image is a number", post("/infer", "application/json", r#"{"image": 42}"#), refused(422, "invalid_request")),
        Row::new(S, "image is an object", post("/infer", "application/json", r#"{"image": {"base64": "aGk="}}"#), refused(422, "invalid_request")),
        Row::new(S, "body is a string", post("/infer", "application/json", r#""aGk=""#), refused(422, "invalid_request")),
        Row::new(S, "unknown field", post("/infer", "application/json", r#"{"image": "aGk=", "model": "resnet"}"#), refused(422, "unknown_field")),
        Row::new(S, "no image field", post("/infer", "application/json", "{}"), refused(422, "missing_field")),
        Row::new(S, "invalid UTF-8 in the JSON", post("/infer", "application/json", &b"{\"image\": \"\xff\xfe\xfd\"}"[..]), refused(400, "invalid_json")),
        Row::new(S, "invalid UTF-8 in Content-Type", request(Method::POST, "/infer", Some(b"image/\xffpng"), Body::from(photo("coffee.png"))), refused(415, "unsupported_media_type")),
        Row::new(S, "base64 with 3 padding characters", post("/infer", "application/json", r#"{"image": "aGk==="}"#), refused(400, "invalid_base64")),
        Row::new(S, "base64 with padding mid-string", post("/infer", "application/json", r#"{"image": "aG==aGk="}"#), refused(400, "invalid_base64")),
        Row::new(S, "base64 of bad length", post("/infer", "application/json", r#"{"image": "aGk9a"}"#), refused(400, "invalid_base64")),
        Row::new(S, "base64 outside the alphabet", post("/infer", "application/json", r#"{"image": "aGk*aGk="}"#), refused(400, "invalid_base64")),
        Row::new(S, "base64 mixing both alphabets", post("/infer", "application/json", r#"{"image": "a+b_"}"#), refused(400, "invalid_base64")),
        Row::new(S, "base64 wrapped at 76 columns", post("/infer", "application/json", json!({"image": wrapped_base64(&photo("grace_hopper.jpg"))}).to_string()), refused(400, "invalid_base64")),
        Row::new(S, "data URL of text/plain", post("/infer", "application/json", r#"{"image": "data:text/plain;base64,aGk="}"#), refused(400, "invalid_data_url")),
        Row::new(S, "empty base64", post("/infer", "application/json", r#"{"image": ""}"#), refused(400, "empty_image")),
        Row::new(S, "form body", post("/infer", "application/x-www-form-urlencoded", "image=aGk%3D"), refused(415, "unsupported_media_type")),
        Row::new(S, "no content type", request(Method::POST, "/infer", None, Body::from(photo("coffee.png"))), refused(415, "unsupported_media_type")),
        Row::new(S, "GET with a body", request(Method::GET, "/infer", Some(b"image/png"), Body::from(photo("coffee.png"))), refused(405, "method_not_allowed")),
    ]
}

/// `POST /enqueue` (README "HTTP API"): the payload is checked as base64 and never decoded, so
/// a bomb or a broken image is accepted (inference refuses it later, as the item's outcome);
/// everything else that is not a base64 image is a 400, 413 or 415.
#[rustfmt::skip] // one row a line: a table
fn dispatcher_rows() -> Vec<Row> {
    use Service::Dispatcher as S;
    let enqueue = |body: &[u8]| post("/enqueue", "application/json", body.to_vec());
    vec![
        Row::new(S, "empty body", enqueue(b""), refused(400, "invalid_json")),
        Row::new(S, "random bytes", enqueue(&corpus::random_bytes(4096)), refused(400, "invalid_json")),
        Row::new(S, "an image with an image content type", post("/enqueue", "image/png", photo("coffee.png")), refused(415, "unsupported_media_type")),
        Row::new(S, "text as base64", enqueue(image_json(b"a text file named cat.png").as_bytes()), Expect::Accepted(StatusCode::ACCEPTED)),
        Row::new(S, "truncated JPEG as base64", enqueue(image_json(&corpus::truncated_jpeg()).as_bytes()), Expect::Accepted(StatusCode::ACCEPTED)),
        Row::new(S, "50 MB body, declared", huge_declared("/enqueue", "application/json"), refused(413, "body_too_large")),
        Row::new(S, "50 MB body, streamed", huge_streamed("/enqueue", "application/json"), refused(413, "body_too_large")),
        Row::new(S, "100 000 nested arrays", enqueue(corpus::nested_json("", 100_000).as_bytes()), refused(400, "invalid_json")),
        Row::new(S, "100 000 nested arrays in image", enqueue(corpus::nested_json(r#"{"image":"#, 100_000).as_bytes()), refused(400, "invalid_json")),
        Row::new(S, "image is a number", enqueue(br#"{"image": 5}"#), refused(400, "invalid_json")),
        Row::new(S, "id is a number", enqueue(br#"{"image": "aGk=", "id": 7}"#), refused(400, "invalid_json")),
        Row::new(S, "legacy imageBase64 is a list", enqueue(br#"{"message": {"imageBase64": ["aGk="]}}"#), refused(400, "invalid_json")),
        Row::new(S, "unknown field", enqueue(br#"{"image": "aGk=", "priority": 1}"#), refused(400, "invalid_json")),
        Row::new(S, "invalid UTF-8 in image", enqueue(b"{\"image\": \"aGk\xff\"}"), refused(400, "invalid_json")),
        Row::new(S, "invalid UTF-8 in id", enqueue(b"{\"image\": \"aGk=\", \"id\": \"\xc3\x28\"}"), refused(400, "invalid_json")),
        Row::new(S, "invalid UTF-8 in Content-Type", request(Method::POST, "/enqueue", Some(b"application/\xffjson"), Body::from(image_json(b"x"))), refused(415, "unsupported_media_type")),
        Row::new(S, "base64 with 3 padding characters", enqueue(br#"{"image": "aGk==="}"#), refused(400, "invalid_base64")),
        Row::new(S, "base64 of bad length", enqueue(br#"{"image": "aGk9a"}"#), refused(400, "invalid_base64")),
        Row::new(S, "base64 outside the alphabet", enqueue(br#"{"image": "aGk*aGk="}"#), refused(400, "invalid_base64")),
        Row::new(S, "base64 mixing both alphabets", enqueue(br#"{"image": "a+b_"}"#), refused(400, "invalid_base64")),
        Row::new(S, "data URL of text/plain", enqueue(br#"{"image": "data:text/plain;base64,aGk="}"#), refused(400, "invalid_data_url")),
        Row::new(S, "empty base64", enqueue(br#"{"image": ""}"#), refused(400, "empty_image")),
        Row::new(S, "no image", enqueue(br#"{"id": "a"}"#), refused(400, "missing_image")),
        Row::new(S, "both body shapes", enqueue(br#"{"image": "aGk=", "message": {"imageBase64": "aGk="}}"#), refused(400, "ambiguous_image")),
        Row::new(S, "empty id", enqueue(br#"{"image": "aGk=", "id": ""}"#), refused(400, "invalid_id")),
        Row::new(S, "id of 10 000 bytes", enqueue(json!({"image": "aGk=", "id": "x".repeat(10_000)}).to_string().as_bytes()), refused(400, "invalid_id")),
    ]
}

/// The load tester's `POST /storeLatency` (open), `POST /runLoadTest` and
/// `POST /generateReport` (bearer token) and `GET /runs/{id}` (README "HTTP API"): 400
/// `invalid_json` for bodies that are not JSON, 422 `invalid_json` for JSON of the wrong shape,
/// 400 `invalid_workload` (with line and column) and `invalid_request`, 401 `unauthorized`,
/// 413 `body_too_large`, 415 `unsupported_media_type`, 404 for unknown runs.
#[rustfmt::skip] // one row a line: a table
fn load_tester_rows() -> Vec<Row> {
    use Service::LoadTester as S;
    let store = |body: &[u8]| post("/storeLatency", "application/json", body.to_vec());
    let run = |body: &str| authorized(post("/runLoadTest", "application/json", body.to_owned()));
    let report = |body: &str| authorized(post("/generateReport", "application/json", body.to_owned()));
    vec![
        Row::new(S, "store: empty body", store(b""), refused(400, "invalid_json")),
        Row::new(S, "store: random bytes", store(&corpus::random_bytes(4096)), refused(400, "invalid_json")),
        Row::new(S, "store: 100 000 nested arrays", store(corpus::nested_json("", 100_000).as_bytes()), refused(400, "invalid_json")),
        Row::new(S, "store: a record of the wrong types", store(br#"{"id": 5, "latencyMs": "slow"}"#), refused(422, "invalid_json")),
        Row::new(S, "store: invalid UTF-8", store(b"[{\"id\": \"\xff\"}]"), refused(400, "invalid_json")),
        Row::new(S, "store: text/plain", post("/storeLatency", "text/plain", "[]"), refused(415, "unsupported_media_type")),
        Row::new(S, "store: 50 MB, declared", huge_declared("/storeLatency", "application/json"), refused(413, "body_too_large")),
        Row::new(S, "store: 50 MB, streamed", huge_streamed("/storeLatency", "application/json"), refused(413, "body_too_large")),
        Row::new(S, "run: no token", post("/runLoadTest", "application/json", "{}"), refused(401, "unauthorized")),
        Row::new(S, "run: a 100 KB token", with_header(post("/runLoadTest", "application/json", "{}"), header::AUTHORIZATION, format!("Bearer {}", "t".repeat(100_000)).as_bytes()), refused(401, "unauthorized")),
        Row::new(S, "run: invalid UTF-8 token", with_header(post("/runLoadTest", "application/json", "{}"), header::AUTHORIZATION, b"Bearer \xff\xfe"), refused(401, "unauthorized")),
        Row::new(S, "run: empty body", run(""), refused(400, "invalid_json")),
        Row::new(S, "run: 100 000 nested arrays", run(&corpus::nested_json("", 100_000)), refused(422, "invalid_json")),
        Row::new(S, "run: 100 000 nested arrays in workload", run(&corpus::nested_json(r#"{"workload":"#, 100_000)), refused(400, "invalid_json")),
        Row::new(S, "run: unknown field", run(r#"{"rps": 10}"#), refused(422, "invalid_json")),
        Row::new(S, "run: maxImages is text", run(r#"{"maxImages": "ten"}"#), refused(422, "invalid_json")),
        Row::new(S, "run: negative seed", run(r#"{"seed": -1}"#), refused(422, "invalid_json")),
        Row::new(S, "run: workload is an object", run(r#"{"workload": {"0": 5}}"#), refused(422, "invalid_json")),
        Row::new(S, "run: workload with letters", run(r#"{"workload": "1, 2\n3, abc"}"#), refused(400, "invalid_workload")),
        Row::new(S, "run: workload with ';'", run(r#"{"workload": "1;2;3"}"#), refused(400, "invalid_workload")),
        Row::new(S, "run: negative rate", run(r#"{"workload": [1, -2]}"#), refused(400, "invalid_workload")),
        Row::new(S, "run: decimal rate", run(r#"{"workload": [2.5]}"#), refused(400, "invalid_workload")),
        Row::new(S, "run: rate 1e12", run(r#"{"workload": [1e12]}"#), refused(400, "invalid_workload")),
        Row::new(S, "run: empty workload", run(r#"{"workload": []}"#), refused(400, "invalid_workload")),
        Row::new(S, "run: file:// dispatcher URL", run(r#"{"dispatcherUrl": "file:///etc/passwd"}"#), refused(400, "invalid_request")),
        Row::new(S, "run: dispatcher URL not a URL", run(r#"{"dispatcherUrl": "::"}"#), refused(400, "invalid_request")),
        Row::new(S, "run: unknown arrivals", run(r#"{"arrivals": "bursty"}"#), refused(400, "invalid_request")),
        Row::new(S, "run: unreachable dispatcher", run(r#"{"workload": [1], "maxImages": 1}"#), refused(422, "dispatcher_unreachable")),
        Row::new(S, "run: invalid UTF-8", authorized(post("/runLoadTest", "application/json", &b"{\"arrivals\": \"\xff\"}"[..])), refused(400, "invalid_json")),
        Row::new(S, "run: 50 MB, declared", authorized(huge_declared("/runLoadTest", "application/json")), refused(413, "body_too_large")),
        Row::new(S, "report: unknown field", report(r#"{"format": "pdf"}"#), refused(422, "invalid_json")),
        Row::new(S, "report: runId is a number", report(r#"{"runId": 5}"#), refused(422, "invalid_json")),
        Row::new(S, "report: a path as runId", report(r#"{"runId": "../../../etc"}"#), refused(404, "run_not_found")),
        Row::new(S, "runs: a path as id", get("/runs/..%2F..%2Fetc%2Fpasswd"), refused(404, "run_not_found")),
        Row::new(S, "runs: an id of 10 000 bytes", get(&format!("/runs/{}", "r".repeat(10_000))), refused(404, "run_not_found")),
        Row::new(S, "runs: invalid UTF-8 in the id", get("/runs/%FF%FE"), refused(400, "invalid_request")),
    ]
}

/// The autoscaler (README "HTTP and metrics"): no endpoint takes a body; `/status`, `/pause`
/// and `/resume` need the bearer token (401 `unauthorized`).
#[rustfmt::skip] // one row a line: a table
fn autoscaler_rows() -> Vec<Row> {
    use Service::Autoscaler as S;
    let pause = |body: Body| request(Method::POST, "/pause", Some(b"application/json"), body);
    vec![
        Row::new(S, "pause: no token, 50 MB body", huge_declared("/pause", "application/json"), refused(401, "unauthorized")),
        Row::new(S, "pause: invalid UTF-8 token", with_header(pause(Body::empty()), header::AUTHORIZATION, b"Bearer \xff"), refused(401, "unauthorized")),
        Row::new(S, "status: a 100 KB token", with_header(get("/status"), header::AUTHORIZATION, format!("Bearer {}", "t".repeat(100_000)).as_bytes()), refused(401, "unauthorized")),
        Row::new(S, "status: token without 'Bearer '", with_header(get("/status"), header::AUTHORIZATION, TOKEN.as_bytes()), refused(401, "unauthorized")),
        Row::new(S, "pause: a nested-JSON body is ignored", authorized(pause(Body::from(corpus::nested_json("", 100_000)))), Expect::Accepted(StatusCode::OK)),
        Row::new(S, "resume: a 50 MB body is ignored", authorized(huge_streamed("/resume", "application/json")), Expect::Accepted(StatusCode::OK)),
        Row::new(S, "an unknown path", get("/../../etc/passwd"), refused(404, "not_found")),
        Row::new(S, "DELETE /pause", authorized(request(Method::DELETE, "/pause", None, Body::empty())), refused(405, "method_not_allowed")),
    ]
}

/// `base64` without `-w0`: a newline every 76 characters, which no accepted alphabet has.
fn wrapped_base64(bytes: &[u8]) -> String {
    let text = encode(bytes);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    lines.join("\n")
}

/// Runs rows in order and collects every broken promise, so one run reports all of them.
async fn run_rows(routers: &Routers, rows: Vec<Row>, failures: &mut Vec<String>) {
    for row in rows {
        let (service, case) = (row.service, row.case);
        let route = format!("{} {}", row.request.method(), row.request.uri().path());
        let route: String = route.chars().take(40).collect();
        match check::run(routers.router(service), row).await {
            Ok(got) => println!(
                "{service:<12} {route:<40} {case:<40} {} {}",
                got.status.as_u16(),
                got.code.as_deref().unwrap_or("-")
            ),
            Err(failure) => failures.push(failure),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_hostile_input_as_documented() {
    let _serial = SERIAL.lock().await;
    let routers = Routers::new();
    // The reference: the original photo's top-1 label, from the same service.
    let label = classify(
        inference::app(routers.inference.clone()),
        photo("coffee.png"),
    )
    .await;

    let mut failures = Vec::new();
    for rows in [
        inference_rows(&label),
        dispatcher_rows(),
        load_tester_rows(),
        autoscaler_rows(),
    ] {
        run_rows(&routers, rows, &mut failures).await;
    }
    assert!(
        failures.is_empty(),
        "{} broken promise(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing the dispatcher refused was queued: only the two rows it accepts.
    assert_eq!(routers.dispatcher.stats().queue_length, 2);
}

/// The top-1 label of a raw image.
async fn classify(router: axum::Router, bytes: Vec<u8>) -> String {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = router
        .oneshot(post("/infer", "application/octet-stream", bytes))
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    check::predictions(status, &body).unwrap()
}

// --------------------------------------------------------------------------------- bombs

/// Peak resident memory of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in kB");
    kb * 1024
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so that growth from here is measured
/// rather than hidden under an earlier peak. Without the reset the measurement can only
/// miss growth, never invent it.
fn reset_peak_rss() -> (u64, bool) {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    (peak_rss(), reset)
}

/// Decompression bombs (inference README "Errors": 422 `too_many_pixels`, refused from the
/// header), a control that the same builder makes a valid image at a decodable size, and the
/// dispatcher, which never decodes.
#[rustfmt::skip] // one row a line: a table
fn bomb_rows(header_bomb: &[u8], deflate_bomb: &[u8]) -> Vec<Row> {
    use Service::{Dispatcher, Inference};
    let bomb = || refused(422, "too_many_pixels");
    vec![
        Row::new(Inference, "PNG 30000x30000 header, raw", post("/infer", "image/png", header_bomb.to_vec()), bomb()),
        Row::new(Inference, "PNG 30000x30000 header, base64", post("/infer", "application/json", image_json(header_bomb)), bomb()),
        Row::new(Inference, "PNG 30000x30000 complete 1-bit stream, raw", post("/infer", "image/png", deflate_bomb.to_vec()), bomb()),
        Row::new(Inference, "PNG 30000x30000 complete 1-bit stream, base64", post("/infer", "application/json", image_json(deflate_bomb)), bomb()),
        Row::new(Inference, "JPEG declaring 65000x65000", post("/infer", "image/jpeg", corpus::jpeg_bomb(65_000)), bomb()),
        Row::new(Inference, "the same 1-bit PNG stream at 67x67", post("/infer", "image/png", corpus::png_deflate_bomb(67)), Expect::Classified),
        Row::new(Dispatcher, "PNG bomb as base64 (never decoded)", post("/enqueue", "application/json", image_json(deflate_bomb)), Expect::Accepted(StatusCode::ACCEPTED)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_are_refused_in_under_a_second_without_a_large_allocation() {
    let _serial = SERIAL.lock().await;
    let routers = Routers::new();
    let header_bomb = corpus::png_header_bomb(BOMB_SIDE);
    let deflate_bomb = corpus::png_deflate_bomb(BOMB_SIDE);
    assert!(header_bomb.len() < 1_000_000 && deflate_bomb.len() < 1_000_000);
    let rows = bomb_rows(&header_bomb, &deflate_bomb);
    // The model's first run allocates its buffers; not part of the measurement.
    classify(
        inference::app(routers.inference.clone()),
        photo("coffee.png"),
    )
    .await;

    let (before, reset) = reset_peak_rss();
    let mut failures = Vec::new();
    for row in rows {
        let case = row.case;
        match check::run(routers.router(row.service), row).await {
            Ok(got) if got.elapsed > BOMB_TIME_LIMIT => {
                failures.push(format!("{case}: took {:?}", got.elapsed));
            }
            Ok(got) => println!("{case:<50} {} in {:?}", got.status.as_u16(), got.elapsed),
            Err(failure) => failures.push(failure),
        }
    }
    image_pool_skips_bombs(&header_bomb, &deflate_bomb, &mut failures);
    let grown = peak_rss().saturating_sub(before);
    println!(
        "peak RSS grew by {} MB (peak reset before: {reset})",
        grown / (1024 * 1024)
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        grown < BOMB_MEMORY_LIMIT,
        "peak RSS grew by {} MB while refusing bombs",
        grown / (1024 * 1024)
    );
}

/// The load tester's `--images` folder is read at start-up: with `--resize` every file is
/// decoded, so a bomb there must be skipped (as "not a decodable image") as fast.
fn image_pool_skips_bombs(header_bomb: &[u8], deflate_bomb: &[u8], failures: &mut Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-header-bomb.png"), header_bomb).unwrap();
    std::fs::write(dir.path().join("b-deflate-bomb.png"), deflate_bomb).unwrap();
    std::fs::write(
        dir.path().join("c-text.jpg"),
        "a text file named c-text.jpg",
    )
    .unwrap();
    std::fs::write(dir.path().join("d-empty.webp"), "").unwrap();
    std::fs::write(dir.path().join("e-coffee.png"), photo("coffee.png")).unwrap();
    let started = Instant::now();
    let (pool, skipped) = load_tester::ImagePool::load_blocking(dir.path(), Some(64)).unwrap();
    let elapsed = started.elapsed();
    let names: Vec<String> = skipped
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    if pool.len() != 1
        || names
            != [
                "a-header-bomb.png",
                "b-deflate-bomb.png",
                "c-text.jpg",
                "d-empty.webp",
            ]
    {
        failures.push(format!(
            "image pool: kept {}, skipped {names:?}",
            pool.len()
        ));
    }
    if elapsed > 2 * BOMB_TIME_LIMIT {
        failures.push(format!("image pool with two bombs took {elapsed:?}"));
    }
}

// ------------------------------------------------------------------------- over a socket

/// A request sent over a socket, and the status (and error code, when the router answers
/// rather than hyper) it must get.
struct SocketRow {
    case: &'static str,
    head: String,
    upload: Upload,
    status: u16,
    code: Option<&'static str>,
}

/// Per service: the 50 MB body on its one input route (the autoscaler's takes no body and
/// refuses it for want of a token), then the request-head limits of hyper (about 400 KB of
/// head, at most 100 headers: 431 without a body, before any router sees the request).
#[rustfmt::skip] // one row a line: a table
fn socket_rows(service: Service) -> Vec<SocketRow> {
    let (route, status, code) = match service {
        Service::Inference => ("/infer", 413, "payload_too_large"),
        Service::Dispatcher => ("/enqueue", 413, "body_too_large"),
        Service::LoadTester => ("/storeLatency", 413, "body_too_large"),
        Service::Autoscaler => ("/pause", 401, "unauthorized"),
    };
    let post = format!("POST {route} HTTP/1.1\r\nContent-Type: application/json");
    let cookie = |bytes: usize| format!("GET /healthz HTTP/1.1\r\nCookie: session={}", "c".repeat(bytes));
    let pads: Vec<String> = (0..200).map(|i| format!("X-Pad-{i}: {i}")).collect();
    let row = |case, head, upload, status, code| SocketRow { case, head, upload, status, code };
    vec![
        row("50 MB body, declared", post.clone(), Upload::Sized(corpus::huge_body()), status, Some(code)),
        row("50 MB body, chunked", post, Upload::Chunked(corpus::huge_body()), status, Some(code)),
        row("100 KB cookie", cookie(100_000), Upload::None, 200, None),
        row("1 MB cookie", cookie(1_000_000), Upload::None, 431, None),
        row("200 headers", format!("GET /healthz HTTP/1.1\r\n{}", pads.join("\r\n")), Upload::None, 431, None),
        row("afterwards", "GET /healthz HTTP/1.1".to_owned(), Upload::None, 200, None),
    ]
}

/// Limits enforced by the HTTP server (hyper) rather than the router, and bodies delivered by
/// a real connection: each service started by its crate's entry point on `127.0.0.1:0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_over_a_real_connection() {
    let _serial = SERIAL.lock().await;
    let servers = Servers::start().await;
    let mut failures = Vec::new();
    for &(service, addr) in &servers.addrs {
        for row in socket_rows(service) {
            let reply = exchange(addr, &row.head, row.upload).await;
            let code = serde_json::from_slice::<harness_core::ApiErrorBody>(&reply.body)
                .ok()
                .map(|body| body.error.code);
            println!(
                "{service:<12} {:<22} {} {}",
                row.case,
                reply.status,
                code.as_deref().unwrap_or("-")
            );
            let code_ok = row.code.is_none_or(|want| code.as_deref() == Some(want));
            if reply.status != row.status || !code_ok {
                failures.push(format!(
                    "{service} {}: expected {} {:?}, got {} {}",
                    row.case,
                    row.status,
                    row.code,
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ));
            }
        }
    }
    servers.stop().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
