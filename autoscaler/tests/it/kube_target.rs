//! The Deployment target over a mocked API server (`tower_test::mock::pair`): the exact GET and
//! PATCH of `/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`, nothing sent when the
//! count is right, 404 and other API errors.

use std::time::{Duration, Instant};

use autoscaler::controller::{Action, Controller, ControllerHandle, ControllerSettings};
use autoscaler::{
    DeploymentTarget, PolicySpec, Telemetry, TelemetryError, TelemetrySource, Tuning,
};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

const SCALE_PATH: &str = "/apis/apps/v1/namespaces/ml/deployments/inference/scale";

/// A source that always reads the same sample.
struct Steady;

impl TelemetrySource for Steady {
    fn name(&self) -> &'static str {
        "steady"
    }

    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        Ok(Telemetry {
            arrival_rate: Some(20.0),
            queue_length: Some(0.0),
            ..Telemetry::empty(now)
        })
    }
}

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn controller(
    policy: PolicySpec,
) -> (
    Controller<Steady, DeploymentTarget>,
    ControllerHandle,
    ApiHandle,
) {
    let (service, api) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let target = DeploymentTarget::new(client, Some("ml"), "inference");
    let handle = ControllerHandle::new().unwrap();
    let settings = ControllerSettings::new(policy, Tuning::default());
    (
        Controller::new(Steady, target, settings, handle.clone()),
        handle,
        api,
    )
}

fn scale(replicas: u32) -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "inference", "namespace": "ml"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": "app=inference"}
    })
}

fn respond(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn not_found() -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "deployments.apps \"inference\" not found", "reason": "NotFound",
        "details": {"name": "inference", "group": "apps", "kind": "deployments"}, "code": 404
    })
}

/// Answers the next request after checking it is a GET of the scale subresource.
async fn expect_get(api: &mut ApiHandle, status: StatusCode, body: Value) {
    let (request, send) = api.next_request().await.expect("a GET of the scale");
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), SCALE_PATH);
    send.send_response(respond(status, body));
}

/// One controller step, bounded: a request the mock never answers must fail the test, not hang
/// it.
async fn step(
    controller: &mut Controller<Steady, DeploymentTarget>,
    now: Instant,
) -> autoscaler::Status {
    tokio::time::timeout(Duration::from_secs(10), controller.step(now))
        .await
        .expect("the step sent a request nobody expected")
}

/// Asserts that nothing else reaches the API server, once every client is gone.
async fn expect_nothing_more(api: &mut ApiHandle) {
    let next = tokio::time::timeout(Duration::from_secs(5), api.next_request())
        .await
        .expect("the mock must close once the controller is dropped");
    assert!(
        next.is_none(),
        "unexpected request: {:?}",
        next.map(|(r, _)| r.uri().clone())
    );
}

#[tokio::test]
async fn patches_the_scale_subresource_when_the_count_changes() {
    let (mut controller, handle, mut api) = controller(PolicySpec::Static(5));
    let server = tokio::spawn(async move {
        expect_get(&mut api, StatusCode::OK, scale(2)).await;
        let (request, send) = api.next_request().await.expect("a PATCH of the scale");
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(request.uri().path(), SCALE_PATH);
        // kube-rs writes `?&fieldManager=...`; the pairs are what matter.
        let query: Vec<&str> = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .collect();
        assert_eq!(query, ["fieldManager=inference-autoscaler"]);
        assert_eq!(
            request.headers().get("content-type").unwrap(),
            "application/merge-patch+json"
        );
        let body = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"spec": {"replicas": 5}}));
        send.send_response(respond(StatusCode::OK, scale(5)));
        api
    });
    let status = step(&mut controller, Instant::now()).await;
    assert_eq!(status.action, Action::Scaled);
    assert_eq!(status.current_replicas, Some(2));
    assert_eq!(handle.metrics().desired_replicas.get(), 5);
    let mut api = server.await.unwrap();
    drop(controller);
    expect_nothing_more(&mut api).await;
}

#[tokio::test]
async fn sends_nothing_but_the_get_when_the_count_is_right() {
    let (mut controller, _handle, mut api) = controller(PolicySpec::Static(5));
    let server = tokio::spawn(async move {
        expect_get(&mut api, StatusCode::OK, scale(5)).await;
        api
    });
    let status = step(&mut controller, Instant::now()).await;
    assert_eq!(status.action, Action::None);
    let mut api = server.await.unwrap();
    drop(controller);
    expect_nothing_more(&mut api).await;
}

#[tokio::test]
async fn a_missing_deployment_is_retried_next_interval() {
    let (mut controller, handle, mut api) = controller(PolicySpec::Static(3));
    let server = tokio::spawn(async move {
        expect_get(&mut api, StatusCode::NOT_FOUND, not_found()).await;
        // Next interval: it exists now.
        expect_get(&mut api, StatusCode::OK, scale(3)).await;
        api
    });
    let t0 = Instant::now();
    let status = step(&mut controller, t0).await;
    assert_eq!(status.action, Action::Failed);
    assert!(status.error.unwrap().contains("not found"));
    let errors = handle
        .metrics()
        .scale_errors
        .with_label_values(&["not_found"])
        .get();
    assert_eq!(errors, 1);
    let status = step(&mut controller, t0 + Duration::from_secs(15)).await;
    assert_eq!(status.action, Action::None);
    let mut api = server.await.unwrap();
    drop(controller);
    expect_nothing_more(&mut api).await;
}

#[tokio::test]
async fn other_api_errors_are_counted_by_code() {
    let (mut controller, handle, mut api) = controller(PolicySpec::Static(4));
    let server = tokio::spawn(async move {
        expect_get(&mut api, StatusCode::OK, scale(1)).await;
        let (request, send) = api.next_request().await.expect("a PATCH");
        assert_eq!(request.method(), Method::PATCH);
        send.send_response(respond(
            StatusCode::FORBIDDEN,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
                   "reason": "Forbidden", "message": "cannot patch deployments/scale"}),
        ));
        api
    });
    let status = step(&mut controller, Instant::now()).await;
    assert_eq!(status.action, Action::Failed);
    let forbidden = handle
        .metrics()
        .scale_errors
        .with_label_values(&["forbidden"])
        .get();
    assert_eq!(forbidden, 1);
    server.await.unwrap();
}
