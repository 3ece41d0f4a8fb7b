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
#[path = "hostile_input/table.rs"]
mod table;
#[path = "hostile_input/table_v2.rs"]
mod table_v2;

use std::time::{Duration, Instant};

use axum::http::StatusCode;

use check::{Expect, Row};
use corpus::{BOMB_SIDE, photo};
use raw_http::{Upload, exchange};
use services::{Routers, Servers, Service};
use table::{
    autoscaler_rows, dispatcher_rows, image_json, inference_rows, load_tester_rows, post, refused,
};
use table_v2::{inference_v2_rows, v2_base64, v2_binary};

/// The tests of this file one at a time: the bomb test's memory measurement covers the whole
/// process, and several 50 MB bodies at once would only measure the test itself.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Loose bound for refusing one bomb: the header check takes microseconds, decoding the bomb
/// would take seconds. A guard check, not a performance target.
const BOMB_TIME_LIMIT: Duration = Duration::from_secs(1);

/// Bound on the growth of peak RSS while the bombs are refused (decoding one would need
/// 0.9 to 2.7 GB).
const BOMB_MEMORY_LIMIT: u64 = 200 * 1024 * 1024;

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
        inference_v2_rows(&label),
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

/// The inference rows again with the model under onnxruntime: the same status and code for
/// every bad input, and for every valid but unusual photo the label tract gives the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_answers_hostile_input_alike_under_onnxruntime() {
    let test = "inference_answers_hostile_input_alike_under_onnxruntime";
    let Some(library) = test_support::onnxruntime::library(test) else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let mut routers = Routers::new();
    let label = classify(
        inference::app(routers.inference.clone()),
        photo("coffee.png"),
    )
    .await;
    routers.inference = services::onnxruntime_state(&library);
    let runtime = routers.inference.classifier().map(|c| c.runtime().runtime);
    assert_eq!(runtime, Some(inference::runtime::Runtime::Onnxruntime));
    let mut failures = Vec::new();
    run_rows(&routers, inference_rows(&label), &mut failures).await;
    run_rows(&routers, inference_v2_rows(&label), &mut failures).await;
    assert!(
        failures.is_empty(),
        "{} broken promise(s) under onnxruntime:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `GET /` on every service lists only endpoints that exist: each answers with something other
/// than the router's own 404 or 405 (a 401 without the token, a 4xx for an empty body, a 404
/// for an unknown run are all answers). `GET /health` answers as `/healthz` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_index_lists_endpoints_that_exist() {
    let _serial = SERIAL.lock().await;
    let routers = Routers::new();
    let mut failures = Vec::new();
    for service in [
        Service::Inference,
        Service::Dispatcher,
        Service::LoadTester,
        Service::Autoscaler,
    ] {
        let router = routers.router(service);
        let (status, index) = answer(&router, "GET", "/").await;
        assert_eq!(status, StatusCode::OK, "{service} GET /");
        assert_eq!(index["service"], service.to_string());
        let endpoints = index["endpoints"].as_array().unwrap();
        assert!(endpoints.len() >= 3, "{service}: {index}");
        for endpoint in endpoints {
            let method = endpoint["method"].as_str().unwrap();
            let path = endpoint["path"]
                .as_str()
                .unwrap()
                .replace("{id}", "no-such-run")
                .replace("{model}", "efficientnet-lite0");
            let (status, body) = answer(&router, method, &path).await;
            let code = body["error"]["code"].as_str().unwrap_or_default();
            // The v2 routes answer `{"error":"message"}`: axum's fallbacks say so in words.
            let v2_message = body["error"].as_str().unwrap_or_default();
            let v2_unrouted = v2_message.starts_with("no route for")
                || v2_message.ends_with("not allowed on this path");
            if (status, code) == (StatusCode::NOT_FOUND, "not_found")
                || (status, code) == (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
                || v2_unrouted
            {
                failures.push(format!(
                    "{service}: {method} {path} is listed but not routed"
                ));
            }
        }
        let health = answer(&router, "GET", "/health").await.0;
        let healthz = answer(&router, "GET", "/healthz").await.0;
        assert_eq!(
            (health, healthz),
            (StatusCode::OK, StatusCode::OK),
            "{service}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Status and JSON body (`null` when the body is not JSON) of an empty request.
async fn answer(
    router: &axum::Router,
    method: &str,
    path: &str,
) -> (StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
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
        Row::new(Inference, "v2: PNG 30000x30000 header, binary BYTES", v2_binary(header_bomb), Expect::V2Refused(StatusCode::UNPROCESSABLE_ENTITY)),
        Row::new(Inference, "v2: PNG 30000x30000 1-bit stream, base64 BYTES", v2_base64(deflate_bomb), Expect::V2Refused(StatusCode::UNPROCESSABLE_ENTITY)),
        Row::new(Inference, "v2: JPEG declaring 65000x65000, binary BYTES", v2_binary(&corpus::jpeg_bomb(65_000)), Expect::V2Refused(StatusCode::UNPROCESSABLE_ENTITY)),
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
