//! The hostile-input table: request builders and one function of rows per service, each row
//! saying what is sent and what that service's README promises for it.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use futures::stream;
use harness_core::image_payload::encode;
use serde_json::json;

use crate::check::{Expect, Row};
use crate::corpus::{self, HUGE_BODY_BYTES, photo};
use crate::services::{Service, TOKEN};

// ------------------------------------------------------------------------ requests

pub fn request(
    method: Method,
    uri: &str,
    content_type: Option<&[u8]>,
    body: Body,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        builder = builder.header(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(content_type).unwrap(),
        );
    }
    builder.body(body).unwrap()
}

pub fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    request(
        Method::POST,
        uri,
        Some(content_type.as_bytes()),
        body.into(),
    )
}

pub fn get(uri: &str) -> Request<Body> {
    request(Method::GET, uri, None, Body::empty())
}

/// With the control endpoints' bearer token.
pub fn authorized(mut request: Request<Body>) -> Request<Body> {
    let value = HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
    request.headers_mut().insert(header::AUTHORIZATION, value);
    request
}

pub fn with_header(
    mut request: Request<Body>,
    name: header::HeaderName,
    value: &[u8],
) -> Request<Body> {
    let value = HeaderValue::from_bytes(value).unwrap();
    request.headers_mut().insert(name, value);
    request
}

/// `{"image": "<base64 of bytes>"}`.
pub fn image_json(bytes: &[u8]) -> String {
    json!({ "image": encode(bytes) }).to_string()
}

/// The 50 MB body with its length declared up front.
pub fn huge_declared(uri: &str, content_type: &str) -> Request<Body> {
    let mut request = post(uri, content_type, corpus::huge_body());
    let length = HeaderValue::from(HUGE_BODY_BYTES);
    request.headers_mut().insert(header::CONTENT_LENGTH, length);
    request
}

/// The 50 MB body in 1 MB chunks, no length: the limit must trip while reading.
pub fn huge_streamed(uri: &str, content_type: &str) -> Request<Body> {
    let body = corpus::huge_body();
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..body.len())
        .step_by(1024 * 1024)
        .map(|at| Ok(body.slice(at..(at + 1024 * 1024).min(body.len()))))
        .collect();
    post(uri, content_type, Body::from_stream(stream::iter(chunks)))
}

pub fn refused(status: u16, code: &'static str) -> Expect {
    Expect::Refused(StatusCode::from_u16(status).unwrap(), code)
}

// --------------------------------------------------------------------------- the table

/// `POST /infer` (README "Errors"): 400 for bodies that are not JSON or not base64, 413 over
/// `--max-body-bytes`, 415 for other media types, 422 for the wrong JSON shape and for bytes
/// that are not a decodable image. Valid images in any supported encoding are classified.
#[rustfmt::skip] // one row a line: a table
pub fn inference_rows(label: &str) -> Vec<Row> {
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
pub fn dispatcher_rows() -> Vec<Row> {
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
pub fn load_tester_rows() -> Vec<Row> {
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
pub fn autoscaler_rows() -> Vec<Row> {
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
pub fn wrapped_base64(bytes: &[u8]) -> String {
    let text = encode(bytes);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    lines.join("\n")
}
