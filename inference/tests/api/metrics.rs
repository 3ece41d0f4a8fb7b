//! `/metrics` parses as Prometheus text, names what the contract names, and moves with requests.

use axum::http::{StatusCode, header};
use inference::app;

use crate::metrics_text::{parse, sample};
use crate::support::{get, json_infer, photo, ready_state, send};

#[tokio::test]
async fn metrics_parse_and_follow_requests() {
    let state = ready_state(&["--workers", "2"]);
    let app = app(state.clone());

    let reply = send(&app, get("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4"
    );
    let before = parse(&reply.text);
    for name in [
        "inference_in_flight",
        "inference_queue_depth",
        "inference_worker_busy_seconds_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(sample(&before, name, &[]).is_some(), "{name} missing");
    }
    for protocol in ["harness", "v2"] {
        let labels = [("protocol", protocol)];
        assert!(
            sample(&before, "inference_request_duration_seconds_count", &labels).is_some(),
            "no request duration series for protocol {protocol}"
        );
    }
    assert_eq!(sample(&before, "inference_workers", &[]), Some(2.0));
    assert_eq!(
        sample(
            &before,
            "inference_model_info",
            &[("model", "efficientnet-lite0"), ("input_size", "224")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&before, "inference_ready", &[]), Some(1.0));
    assert_eq!(
        sample(
            &before,
            "inference_requests_total",
            &[("protocol", "harness"), ("outcome", "ok")]
        ),
        Some(0.0)
    );
    let busy_before = sample(&before, "inference_worker_busy_seconds_total", &[]).unwrap();

    for name in ["coffee.png", "camera.png"] {
        assert_eq!(
            send(&app, json_infer(&photo(name))).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, json_infer(b"not an image")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let after = parse(&send(&app, get("/metrics")).await.text);
    let value = |name, labels: &[(&str, &str)]| sample(&after, name, labels);
    assert_eq!(
        value(
            "inference_requests_total",
            &[("protocol", "harness"), ("outcome", "ok")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            "inference_requests_total",
            &[("protocol", "harness"), ("outcome", "not_an_image")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "inference_request_duration_seconds_count",
            &[("protocol", "harness")]
        ),
        Some(3.0)
    );
    for stage in ["decode", "preprocess", "model"] {
        assert_eq!(
            value(
                "inference_stage_duration_seconds_count",
                &[("stage", stage)]
            ),
            Some(2.0),
            "{stage}"
        );
    }
    let model_seconds = value(
        "inference_stage_duration_seconds_sum",
        &[("stage", "model")],
    )
    .unwrap();
    let busy = value("inference_worker_busy_seconds_total", &[]).unwrap() - busy_before;
    // Busy time covers the model time of both photos and a bit more (decode, the failed one).
    assert!(
        busy >= model_seconds && model_seconds > 0.0,
        "busy {busy}, model {model_seconds}"
    );
    assert_eq!(value("inference_in_flight", &[]), Some(0.0));
    assert_eq!(value("inference_queue_depth", &[]), Some(0.0));
    // Explicit buckets: the fine model buckets are there.
    assert!(
        value(
            "inference_stage_duration_seconds_bucket",
            &[("stage", "model"), ("le", "0.03")]
        )
        .is_some()
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let state = inference::AppState::new(&crate::support::config(&[])).unwrap();
    let app = app(state.clone());
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK);

    let reply = send(&app, get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "not_ready");
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    let reply = send(&app, json_infer(&photo("coffee.png"))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "not_ready");
    let metrics = parse(&state.metrics().render());
    assert_eq!(sample(&metrics, "inference_ready", &[]), Some(0.0));

    state.set_classifier(crate::support::classifier());
    let reply = send(&app, get("/readyz")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["model"], "efficientnet-lite0");
    assert_eq!(
        send(&app, json_infer(&photo("coffee.png"))).await.status,
        StatusCode::OK
    );
}
