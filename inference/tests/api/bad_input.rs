//! Every kind of bad input gets a 4xx with a stable code, is counted, and never panics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::stream;
use inference::app;

use crate::metrics_text::{parse, sample};
use crate::support::{get, json_infer, photo, post_infer, ready_state, send};
use test_support::bombs::{gif_bomb, jpeg_bomb, png_header_bomb};

fn json(body: &str) -> Request<Body> {
    post_infer("application/json", body.to_owned())
}

#[tokio::test]
async fn the_bad_input_matrix() {
    let state = ready_state(&[]);
    let app = app(state.clone());
    let coffee = photo("coffee.png");
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "invalid JSON",
            json(r#"{"image": "#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "not an object",
            json("[1]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "missing field",
            json("{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
        ),
        (
            "unknown field",
            json(r#"{"image": "aGk=", "model": "x"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
        ),
        (
            "image not a string",
            json(r#"{"image": 7}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "invalid base64",
            json(r#"{"image": "@@@@"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_base64",
        ),
        (
            "empty base64",
            json(r#"{"image": ""}"#),
            StatusCode::BAD_REQUEST,
            "empty_image",
        ),
        (
            "non-image data URL",
            json(r#"{"image": "data:text/plain;base64,aGk="}"#),
            StatusCode::BAD_REQUEST,
            "invalid_data_url",
        ),
        (
            "empty JSON body",
            json(""),
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        (
            "empty raw body",
            post_infer("image/png", Vec::new()),
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        (
            "text as base64",
            json_infer(b"this is not an image"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_an_image",
        ),
        (
            "text as raw image",
            post_infer("image/jpeg", b"GIF? no.".to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_an_image",
        ),
        (
            "truncated PNG",
            json_infer(&coffee[..coffee.len() / 2]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "truncated JPEG",
            post_infer("image/jpeg", {
                let jpeg = photo("china.jpg");
                jpeg[..jpeg.len() / 2].to_vec()
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "PNG header only",
            post_infer("image/png", coffee[..60].to_vec()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "wrong content type",
            post_infer("text/plain", coffee.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "form body",
            post_infer("application/x-www-form-urlencoded", "image=abc"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            Request::post("/infer")
                .body(Body::from(coffee.clone()))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    let mut expected_counts: BTreeMap<&str, f64> = BTreeMap::new();
    for (name, request, status, code) in cases {
        let reply = send(&app, request).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.text);
        assert_eq!(reply.code(), code, "{name}: {}", reply.text);
        assert!(
            !reply.json["error"]["message"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{name}: a message for people"
        );
        *expected_counts.entry(code).or_default() += 1.0;
    }
    let metrics = parse(&state.metrics().render());
    for (code, count) in expected_counts {
        let seen = sample(
            &metrics,
            "inference_requests_total",
            &[("protocol", "harness"), ("outcome", code)],
        );
        assert_eq!(
            seen,
            Some(count),
            "inference_requests_total{{outcome={code:?}}}"
        );
    }
    assert_eq!(
        sample(
            &metrics,
            "inference_requests_total",
            &[("protocol", "harness"), ("outcome", "ok")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_whether_declared_or_streamed() {
    let app = app(ready_state(&["--max-body-bytes", "1000"]));
    let coffee = photo("coffee.png");
    let declared = send(&app, post_infer("image/png", coffee.clone())).await;
    assert_eq!(
        declared.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        declared.text
    );
    assert_eq!(declared.code(), "payload_too_large");

    // Chunked: no Content-Length, the limit trips while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        coffee.chunks(300).map(|c| Ok(c.to_vec())).collect();
    let streamed = Request::post("/infer")
        .header(header::CONTENT_TYPE, "image/png")
        .body(Body::from_stream(stream::iter(chunks)))
        .unwrap();
    let reply = send(&app, streamed).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "payload_too_large");

    // At the limit is fine.
    let small = image_of_at_most(1000);
    let reply = send(&app, post_infer("image/png", small)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// A valid PNG of at most `limit` bytes.
fn image_of_at_most(limit: usize) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb([120, 80, 40]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    assert!(out.len() <= limit);
    out
}

#[tokio::test]
async fn more_pixels_than_allowed_is_refused() {
    let app = app(ready_state(&["--max-pixels", "200000"]));
    // coffee.png is 600x400 = 240000 pixels.
    let reply = send(&app, json_infer(&photo("coffee.png"))).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "too_many_pixels");
    // chelsea.png is 451x300 = 135300 pixels.
    let reply = send(&app, json_infer(&photo("chelsea.png"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn decompression_bombs_are_refused_from_their_header() {
    let app = app(ready_state(&[]));
    let bombs = [
        ("PNG 30000x30000", png_header_bomb(30_000)),
        (
            "JPEG 65000x65000",
            jpeg_bomb(photo("coffee-progressive.jpg"), 65_000),
        ),
        ("GIF 65535x65535", gif_bomb(65_535)),
    ];
    for (name, bomb) in bombs {
        assert!(
            bomb.len() < 100_000,
            "{name} is small: {} bytes",
            bomb.len()
        );
        for request in [json_infer(&bomb), post_infer("image/png", bomb.clone())] {
            let started = Instant::now();
            let reply = send(&app, request).await;
            let elapsed = started.elapsed();
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{name}: {}",
                reply.text
            );
            assert_eq!(reply.code(), "too_many_pixels", "{name}: {}", reply.text);
            // Decoding 900 M pixels would take seconds and gigabytes; the header check takes
            // microseconds. The bound is loose for a shared, noisy machine.
            assert!(
                elapsed < Duration::from_millis(500),
                "{name} took {elapsed:?}"
            );
        }
    }
    // The same bomb under the limit is still refused, as a corrupt image (truncated stream).
    let reply = send(&app, json_infer(&png_header_bomb(64))).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "invalid_image");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_error_shape() {
    let app = app(ready_state(&[]));
    let reply = send(&app, get("/nope")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");
    let reply = send(&app, get("/infer")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "method_not_allowed");
    let reply = send(
        &app,
        Request::delete("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "method_not_allowed");
}
