//! Overload is a fast 503 with Retry-After, never a growing backlog. The workers are held busy
//! by jobs that block until released, so every step is deterministic.

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use inference::app;

use crate::metrics_text::{parse, sample};
use crate::support::{Reply, eventually, hold_workers, json_infer, photo, ready_state, send};

/// Sends a request that must be refused at once: with the workers held, a request that is
/// queued instead would wait forever, so waiting is a failure.
async fn refused(app: &axum::Router) -> Reply {
    tokio::time::timeout(
        Duration::from_secs(5),
        send(app, json_infer(&photo("coffee.png"))),
    )
    .await
    .expect("answered at once, not queued")
}

#[tokio::test]
async fn beyond_the_queue_requests_get_503_with_retry_after() {
    let state = ready_state(&["--workers", "1", "--queue-capacity", "1"]);
    let app = app(state.clone());
    let metrics = state.metrics().clone();
    let release = hold_workers(&state);
    eventually("the worker is busy", || metrics.in_flight.get() == 1).await;

    // One request fits in the queue...
    let queued = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, json_infer(&photo("coffee.png"))).await })
    };
    eventually("one request queued", || metrics.queue_depth.get() == 1).await;

    // ...the next ones do not, and are refused at once.
    for _ in 0..3 {
        let started = Instant::now();
        let reply = refused(&app).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text
        );
        assert_eq!(reply.code(), "overloaded");
        assert_eq!(reply.headers[header::RETRY_AFTER], "1");
        assert!(started.elapsed() < Duration::from_secs(1), "fast refusal");
    }
    assert_eq!(metrics.queue_depth.get(), 1);
    assert_eq!(metrics.in_flight.get(), 1);

    drop(release);
    let reply = queued.await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the queued request completes: {}",
        reply.text
    );
    assert_eq!(reply.json["predictions"][0]["label"], "espresso");

    let text = parse(&state.metrics().render());
    assert_eq!(
        sample(
            &text,
            "inference_requests_total",
            &[("outcome", "overloaded")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "inference_requests_total",
            &[("protocol", "harness"), ("outcome", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "inference_queue_depth", &[]), Some(0.0));
}

#[tokio::test]
async fn with_no_queue_only_the_workers_take_requests() {
    let state = ready_state(&["--workers", "2", "--queue-capacity", "0"]);
    let app = app(state.clone());
    let release = hold_workers(&state);
    eventually("both workers busy", || state.metrics().in_flight.get() == 2).await;
    let reply = refused(&app).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "overloaded");
    drop(release);
    eventually("workers free", || state.metrics().in_flight.get() == 0).await;
    let reply = send(&app, json_infer(&photo("coffee.png"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn the_concurrency_limit_sheds_load() {
    // A queue that would accept more, but only one /infer request may be in progress.
    let state = ready_state(&[
        "--workers",
        "1",
        "--queue-capacity",
        "8",
        "--max-concurrency",
        "1",
    ]);
    let app = app(state.clone());
    let release = hold_workers(&state);
    eventually("the worker is busy", || {
        state.metrics().in_flight.get() == 1
    })
    .await;
    let first = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, json_infer(&photo("coffee.png"))).await })
    };
    eventually("one request queued", || {
        state.metrics().queue_depth.get() == 1
    })
    .await;
    let reply = refused(&app).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "overloaded");
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    drop(release);
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_waiting_too_long_times_out_and_its_job_is_skipped() {
    let state = ready_state(&["--workers", "1", "--request-timeout", "200ms"]);
    let app = app(state.clone());
    let release = hold_workers(&state);
    eventually("the worker is busy", || {
        state.metrics().in_flight.get() == 1
    })
    .await;
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        send(&app, json_infer(&photo("coffee.png"))),
    )
    .await
    .expect("the request timeout answers, the held worker does not");
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.code(), "timeout");
    assert_eq!(
        state.metrics().queue_depth.get(),
        1,
        "still queued when it timed out"
    );
    drop(release);
    eventually("queue drained", || state.metrics().queue_depth.get() == 0).await;
    eventually("worker idle", || state.metrics().in_flight.get() == 0).await;
    let text = parse(&state.metrics().render());
    // The abandoned job never ran the model.
    assert_eq!(
        sample(
            &text,
            "inference_stage_duration_seconds_count",
            &[("stage", "model")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "inference_requests_total",
            &[("protocol", "harness"), ("outcome", "timeout")]
        ),
        Some(1.0)
    );
}
