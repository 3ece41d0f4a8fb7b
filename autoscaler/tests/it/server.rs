//! The HTTP endpoints through `app(...).oneshot`: health, metrics, status and the pause switch
//! behind the bearer token, JSON errors for unknown routes.

use std::sync::Arc;
use std::time::Instant;

use autoscaler::controller::{Controller, ControllerHandle, ControllerSettings};
use autoscaler::{
    AppState, ControlAccess, PolicySpec, ScaleTarget, TargetError, Telemetry, TelemetryError,
    TelemetrySource, Tuning, app,
};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

struct Fixed(u32);

impl ScaleTarget for Fixed {
    fn describe(&self) -> String {
        "fixed".into()
    }
    async fn current_replicas(&self) -> Result<u32, TargetError> {
        Ok(self.0)
    }
    async fn scale_to(&self, _: u32) -> Result<(), TargetError> {
        Ok(())
    }
}

struct Quiet;

impl TelemetrySource for Quiet {
    fn name(&self) -> &'static str {
        "quiet"
    }
    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        Ok(Telemetry {
            arrival_rate: Some(5.0),
            ..Telemetry::empty(now)
        })
    }
}

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn health_and_metrics_are_open_and_name_the_contract_metrics() {
    let handle = ControllerHandle::new().unwrap();
    let state = AppState {
        handle: handle.clone(),
        access: ControlAccess::Token("s3cret".into()),
    };
    assert_eq!(
        call(&state, "GET", "/healthz", None).await,
        (StatusCode::OK, "ok".into())
    );
    let mut c = Controller::new(
        Quiet,
        Arc::new(Fixed(2)),
        ControllerSettings::new(PolicySpec::Predictive, Tuning::default()),
        handle,
    );
    c.step(Instant::now()).await;
    let (status, text) = call(&state, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "autoscaler_observed_arrival_rate 5",
        "autoscaler_forecast_arrival_rate",
        "autoscaler_desired_replicas",
        "autoscaler_current_replicas 2",
        "autoscaler_sla_violation_probability",
        "autoscaler_breaker_open 0",
        "autoscaler_decisions_total{direction=\"hold\"}",
        "autoscaler_decision_duration_seconds_bucket",
        "autoscaler_telemetry_age_seconds 0",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
}

#[tokio::test]
async fn status_and_pause_need_the_token() {
    let handle = ControllerHandle::new().unwrap();
    let state = AppState {
        handle: handle.clone(),
        access: ControlAccess::Token("s3cret".into()),
    };
    let (status, body) = call(&state, "GET", "/status", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let (status, _) = call(&state, "POST", "/pause", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!handle.is_paused());
    // No decision yet.
    let (status, body) = call(&state, "GET", "/status", Some("s3cret")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "no_status_yet".into())
    );

    let (status, _) = call(&state, "POST", "/pause", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(handle.is_paused());
    let mut c = Controller::new(
        Quiet,
        Fixed(1),
        ControllerSettings::new(PolicySpec::Static(3), Tuning::default()),
        handle.clone(),
    );
    c.step(Instant::now()).await;
    let (status, body) = call(&state, "GET", "/status", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["policy"], "static:3");
    assert_eq!(v["action"], "suppressed");
    assert_eq!(v["paused"], true);
    assert_eq!(v["recommendation"]["replicas"], 3);
    assert_eq!(v["telemetry"]["arrivalRate"], 5.0);
    let (status, _) = call(&state, "POST", "/resume", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!handle.is_paused());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let state = AppState {
        handle: ControllerHandle::new().unwrap(),
        access: ControlAccess::Open,
    };
    let (status, body) = call(&state, "GET", "/nope", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let (status, body) = call(&state, "DELETE", "/metrics", None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
    // Without a configured token the control endpoints are open.
    let (status, _) = call(&state, "POST", "/pause", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn without_a_token_control_is_open_on_loopback_only() {
    let bind = |addr: &str| addr.parse::<std::net::SocketAddr>().unwrap();
    assert_eq!(
        ControlAccess::for_bind(bind("127.0.0.1:8090"), None, false),
        ControlAccess::Open
    );
    assert_eq!(
        ControlAccess::for_bind(bind("[::1]:8090"), None, false),
        ControlAccess::Open
    );
    assert_eq!(
        ControlAccess::for_bind(bind("0.0.0.0:8090"), None, true),
        ControlAccess::Open
    );
    assert_eq!(
        ControlAccess::for_bind(bind("0.0.0.0:8090"), Some("t"), false),
        ControlAccess::Token("t".into())
    );
    let access = ControlAccess::for_bind(bind("0.0.0.0:8090"), None, false);
    assert_eq!(access, ControlAccess::Disabled);
    assert!(!format!("{:?}", ControlAccess::Token("s3cret".into())).contains("s3cret"));

    let handle = ControllerHandle::new().unwrap();
    let state = AppState {
        handle: handle.clone(),
        access,
    };
    for (method, path) in [("POST", "/pause"), ("POST", "/resume"), ("GET", "/status")] {
        let (status, body) = call(&state, method, path, None).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::FORBIDDEN, "control_disabled".into()),
            "{method} {path}"
        );
    }
    assert!(!handle.is_paused());
    let (status, _) = call(&state, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK, "metrics stay open");
}
