//! The Prometheus source against a local HTTP server answering the real `/api/v1/query`
//! response shapes: vectors (one, several, none), scalars, `NaN`, errors, matrices.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoscaler::telemetry::PromQueries;
use autoscaler::{PrometheusSource, TelemetryError, TelemetrySource};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<String>>>;

fn vector(values: &[&str]) -> Value {
    let result: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"metric": {"instance": format!("10.0.0.{i}:8080")}, "value": [1_700_000_000.781, v]}))
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

/// Answers like Prometheus 2.x for the queries the test configures.
async fn query(
    State(seen): State<Seen>,
    Query(params): Query<Vec<(String, String)>>,
) -> axum::response::Response {
    let q = params
        .iter()
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    seen.lock().unwrap().push(q.clone());
    let body = match q.as_str() {
        "sum(rate(dispatcher_enqueued_total[1m]))" => vector(&["42.5"]),
        "sum(dispatcher_queue_length)" => vector(&["17"]),
        "sum(dispatcher_in_flight)" => vector(&[]),
        "inference_busy_fraction" => vector(&["0.25", "0.35"]),
        "service_rate" => vector(&["NaN"]),
        "ready" => vector(&["3"]),
        "scalar(age)" => {
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1_700_000_000.781, "4"]}})
        }
        "range[5m]" => {
            json!({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1.0, "1"]]}]}})
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": "error", "errorType": "bad_data", "error": "1:1: parse error: unexpected end of input"})),
            )
                .into_response();
        }
    };
    Json(body).into_response()
}

async fn server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/prom/api/v1/query", get(query))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/prom"), seen)
}

fn queries() -> PromQueries {
    PromQueries {
        utilization: "inference_busy_fraction".into(),
        service_rate_per_pod: "service_rate".into(),
        ready_replicas: "ready".into(),
        sample_age: "scalar(age)".into(),
        ..PromQueries::default()
    }
}

#[tokio::test]
async fn reads_every_signal_from_real_response_shapes() {
    let (url, seen) = server().await;
    let mut source = PrometheusSource::new(&url, queries(), Duration::from_secs(5)).unwrap();
    let now = Instant::now();
    let t = source.read(now).await.unwrap();
    assert_eq!(t.arrival_rate, Some(42.5));
    assert_eq!(t.queue_length, Some(17.0));
    assert_eq!(t.in_flight, None, "an empty vector is no value");
    assert_eq!(t.utilisation, Some(0.25 + 0.35), "series are summed");
    assert!(t.service_rate_per_pod.unwrap().is_nan());
    assert_eq!(t.ready_replicas, Some(3.0));
    assert_eq!(
        now - t.observed_at,
        Duration::from_secs(4),
        "observed 4 s ago"
    );
    // The default PromQL arrived intact through URL encoding.
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&"sum(rate(dispatcher_enqueued_total[1m]))".to_owned()));
    assert_eq!(seen.len(), 7);
}

#[tokio::test]
async fn errors_carry_prometheus_error_type_and_message() {
    let (url, _) = server().await;
    let bad = PromQueries {
        arrival_rate: "sum(rate(".into(),
        ..queries()
    };
    let mut source = PrometheusSource::new(&url, bad, Duration::from_secs(5)).unwrap();
    let err = source.read(Instant::now()).await.unwrap_err();
    match &err {
        TelemetryError::Status {
            status: 400,
            detail,
            ..
        } => {
            assert!(
                detail.contains("bad_data") && detail.contains("parse error"),
                "{detail}"
            );
        }
        other => panic!("expected a 400, got {other}"),
    }
    // An optional signal failing does not fail the read.
    let partly = PromQueries {
        queue_length: "not valid promql (".into(),
        ..queries()
    };
    let mut source = PrometheusSource::new(&url, partly, Duration::from_secs(5)).unwrap();
    let t = source.read(Instant::now()).await.unwrap();
    assert_eq!((t.arrival_rate, t.queue_length), (Some(42.5), None));
    // A range vector is not a number.
    let source = PrometheusSource::new(&url, queries(), Duration::from_secs(5)).unwrap();
    let err = source.query("range[5m]").await.unwrap_err();
    assert_eq!(err.code(), "malformed");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut source =
        PrometheusSource::new(&format!("http://{addr}"), queries(), Duration::from_secs(2))
            .unwrap();
    let err = source.read(Instant::now()).await.unwrap_err();
    assert_eq!(err.code(), "unreachable");
}
