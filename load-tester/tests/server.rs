//! The HTTP API: handlers through `oneshot`, and a whole run over the network against the
//! in-process target.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser as _;
use http_body_util::BodyExt as _;
use load_tester::{Cli, Command, ServeConfig};
use serde_json::{Value, json};
use support::{FakeDispatcher, Fate};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

fn serve_config(args: &[&str]) -> ServeConfig {
    let mut all = vec!["load-tester", "serve"];
    all.extend_from_slice(args);
    match Cli::try_parse_from(all).unwrap().command {
        Command::Serve(config) => config,
        Command::Run(_) | Command::Report(_) => unreachable!(),
    }
}

/// The full router with a fresh store, as `serve` builds it.
fn app(config: ServeConfig) -> axum::Router {
    load_tester::server::test_app(config)
}

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

fn post_json(uri: &str, body: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn errors_have_the_project_shape() {
    let app = app(serve_config(&[
        "--auth-token",
        "s3cret",
        "--max-body-bytes",
        "2048",
    ]));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post_json("/runLoadTest", "{}", None),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            post_json("/runLoadTest", "{}", Some("wrong")),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            post_json("/generateReport", "{}", None),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            post_json("/generateReport", "{}", Some("s3cret")),
            StatusCode::NOT_FOUND,
            "no_run",
        ),
        (
            post_json("/runLoadTest", r#"{"workload":[1,2.5]}"#, Some("s3cret")),
            StatusCode::BAD_REQUEST,
            "invalid_workload",
        ),
        (
            post_json("/runLoadTest", r#"{"maxImages":"ten"}"#, Some("s3cret")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
        (
            post_json("/runLoadTest", r#"{"arrivals":"bursty"}"#, Some("s3cret")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_json("/storeLatency", "{not json", None),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Request::post("/storeLatency")
                .body(Body::from("[]"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post_json("/storeLatency", &format!("[{}]", " ".repeat(4096)), None),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (get("/runs/current"), StatusCode::NOT_FOUND, "no_run"),
        (get("/runs/nope"), StatusCode::NOT_FOUND, "run_not_found"),
        // Percent-decodes to bytes that are not UTF-8.
        (
            get("/runs/%FF%FE"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (get("/nowhere"), StatusCode::NOT_FOUND, "not_found"),
        (
            get("/storeLatency"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, body, text) = call(&app, request).await;
        assert_eq!(got, status, "{what}: {text}");
        assert_eq!(body["error"]["code"], code, "{what}: {text}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (_, body, _) = call(
        &app,
        post_json(
            "/runLoadTest",
            r#"{"workload":"1, 2\n3; 4"}"#,
            Some("s3cret"),
        ),
    )
    .await;
    assert_eq!(
        body["error"]["message"],
        "workload:2:2: unexpected separator ';': separate numbers with commas, spaces, tabs or newlines"
    );
}

#[tokio::test]
async fn store_latency_takes_one_or_many_and_counts_strangers() {
    let app = app(serve_config(&[]));
    let record = |id: &str| {
        json!({"id": id, "enqueuedAtMs": 1.0, "dispatchedAtMs": 2.0, "completedAtMs": 5.0,
               "queueWaitMs": 1.0, "inferenceMs": 3.0, "latencyMs": 4.0, "attempts": 1,
               "outcome": "ok", "httpStatus": 200, "label": "x", "endpoint": null})
    };
    let (status, body, _) = call(
        &app,
        post_json("/storeLatency", &record("nobody-1").to_string(), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"stored": 0, "unmatched": 1}));
    let many = json!([record("a-1"), record("no-dash")]).to_string();
    let (_, body, _) = call(&app, post_json("/storeLatency", &many, None)).await;
    assert_eq!(body, json!({"stored": 0, "unmatched": 2}));
    let (status, _, metrics) = call(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("loadtest_records_rejected_total{reason=\"unmatched\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("loadtest_run_active 0"));
    assert!(metrics.contains("process_resident_memory_bytes"));
    let (status, _, text) = call(&app, get("/healthz")).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "ok"));
}

async fn wait_done(client: &reqwest::Client, base: &str, run_id: &str) -> Value {
    for _ in 0..100 {
        let progress: Value = client
            .get(format!("{base}/runs/{run_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if progress["phase"] == "done" {
            return progress;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run_id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_http_from_start_to_report() {
    let dispatcher = FakeDispatcher::start(
        Arc::new(|seq| match seq {
            s if s % 10 == 9 => Fate::Lose,
            _ => Fate::Complete {
                latency_ms: 12.0,
                outcome: "ok".into(),
            },
        }),
        Duration::ZERO,
    )
    .await;
    let images = support::image_dir();
    let reports = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    dispatcher.report_to(format!("{base}/storeLatency"));
    let config = serve_config(&[
        "--auth-token",
        "t0k",
        "--images",
        images.path().to_str().unwrap(),
        "--reports-dir",
        reports.path().to_str().unwrap(),
        "--dispatcher-url",
        "http://127.0.0.1:9", // overridden per run below
        "--drain-timeout",
        "1s",
    ]);
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(load_tester::run(
        listener,
        config,
        stop.clone().cancelled_owned(),
    ));
    let client = reqwest::Client::new();
    let start = || {
        client
            .post(format!("{base}/runLoadTest"))
            .bearer_auth("t0k")
            .json(&json!({"maxImages": 30, "workload": [20, 20], "dispatcherUrl": dispatcher.url}))
            .send()
    };
    let first = start().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let started: Value = first.json().await.unwrap();
    let run_id = started["runId"].as_str().unwrap().to_owned();
    assert_eq!(started["planned"], 30);
    let second = start().await.unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "run_active");

    let progress = wait_done(&client, &base, &run_id).await;
    assert_eq!(progress["sent"], 30);
    assert_eq!(progress["completed"], 27);
    let current: Value = client
        .get(format!("{base}/runs/current"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["runId"], run_id.as_str());

    let report = client
        .post(format!("{base}/generateReport"))
        .bearer_auth("t0k")
        .json(&json!({"totalRequests": 35}))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), StatusCode::OK);
    let report: Value = report.json().await.unwrap();
    assert_eq!(report["runId"], run_id.as_str());
    assert_eq!(report["stats"]["totalRequests"], 35);
    assert_eq!(
        report["stats"]["missing"],
        3 + 5,
        "3 lost records and 5 never sent"
    );
    // 3 significant digits: within 0.1 %.
    let p50 = report["stats"]["latencyMs"]["p50"].as_f64().unwrap();
    assert!((p50 - 12.0).abs() <= 0.012, "p50 {p50}");
    let html = std::path::PathBuf::from(report["reportHtml"].as_str().unwrap());
    assert!(html.starts_with(reports.path()) && html.is_file());

    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn refuses_open_control_endpoints_on_a_public_address() {
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = load_tester::run(listener, serve_config(&[]), std::future::ready(()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");

    for args in [&["--allow-unauthenticated"][..], &["--auth-token", "x"][..]] {
        let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
        load_tester::run(listener, serve_config(args), std::future::ready(()))
            .await
            .unwrap();
    }
    // Loopback without a token is fine.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    load_tester::run(listener, serve_config(&[]), std::future::ready(()))
        .await
        .unwrap();
}
