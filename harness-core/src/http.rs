//! The outer layers and plain handlers every server of the harness shares: a tracing span per
//! request named after its route that also logs the errors handlers attach to their responses,
//! a panic guard, the classification of the errors that tower's limit layers (timeout, load
//! shedding) produce, the `/metrics` answer, the `GET /` index and the 404 / 405 fallbacks.
//!
//! Each service keeps its own limits (body size, concurrency, timeout, and which routes they
//! cover). A [`LayerError`] answers with the codes the services share (408 `request_timeout`,
//! 503 `overloaded` with `Retry-After`, 500 `internal`); a service with other codes for these
//! cases (inference: 503 `timeout`, which the dispatcher retries) maps it to its own error.

use std::any::Any;
use std::time::Duration;

use axum::BoxError;
use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, MakeSpan, OnResponse, TraceLayer,
};
use tracing::{Level, Span};

use crate::api_error::{ErrorDetail, error_response, hides_detail, overloaded_response};

/// An error raised by a tower layer in front of the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerError {
    /// The request took longer than the server's timeout.
    Timeout,
    /// The concurrency limit was full and the request was shed.
    Overloaded,
    /// Anything else (a bug in the layer stack); the detail is for the log.
    Other(String),
}

impl LayerError {
    /// Sorts a boxed layer error.
    pub fn classify(err: BoxError) -> Self {
        if err.is::<tower::timeout::error::Elapsed>() {
            LayerError::Timeout
        } else if err.is::<tower::load_shed::error::Overloaded>() {
            LayerError::Overloaded
        } else {
            LayerError::Other(err.to_string())
        }
    }
}

/// The `HandleErrorLayer` handler in front of a service's limit layers.
pub async fn handle_layer_error(err: BoxError) -> LayerError {
    LayerError::classify(err)
}

impl IntoResponse for LayerError {
    fn into_response(self) -> Response {
        match self {
            LayerError::Timeout => error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request took longer than the server's timeout",
            ),
            LayerError::Overloaded => {
                overloaded_response("overloaded", "too many concurrent requests", 1)
            }
            LayerError::Other(detail) => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("middleware error: {detail}"),
            ),
        }
    }
}

/// Names a request's span after its matched route (`/runs/{id}`, not `/runs/42`), so that
/// logs group by endpoint and ids stay out of span names.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteSpan;

impl<B> MakeSpan<B> for RouteSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> Span {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        tracing::info_span!("http", method = %req.method(), route)
    }
}

/// Logs the [`ErrorDetail`] a handler attached to its response, inside the request's span: at
/// ERROR when the client saw only "internal error" ([`hides_detail`]), at DEBUG for anything
/// else (a 4xx is the client's mistake and a 503 under overload is expected; both are counted
/// in metrics).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogErrors;

impl<B> OnResponse<B> for LogErrors {
    fn on_response(self, response: &axum::http::Response<B>, latency: Duration, span: &Span) {
        DefaultOnResponse::default().on_response(response, latency, span);
        let Some(detail) = response.extensions().get::<ErrorDetail>() else {
            return;
        };
        let status = response.status().as_u16();
        let ms = latency.as_secs_f64() * 1000.0;
        if hides_detail(response.status()) {
            tracing::error!(status, code = detail.code(), error = %detail, ms, "request failed");
        } else {
            tracing::debug!(status, code = detail.code(), error = %detail, ms, "request refused");
        }
    }
}

/// The request tracing layer: a [`RouteSpan`] per request, [`LogErrors`] for the errors
/// handlers attach; 5xx answers are otherwise logged at DEBUG only.
pub fn trace_layer()
-> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RouteSpan, DefaultOnRequest, LogErrors> {
    TraceLayer::new_for_http()
        .make_span_with(RouteSpan)
        .on_response(LogErrors)
        .on_failure(DefaultOnFailure::new().level(Level::DEBUG))
}

/// The registry in the Prometheus text format 0.0.4.
pub fn metrics_text(registry: &prometheus::Registry) -> Result<String, prometheus::Error> {
    let mut text = String::new();
    prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut text)?;
    Ok(text)
}

/// `GET /metrics`: [`metrics_text`] as a response (a 500 whose detail is logged if the registry
/// cannot be encoded).
pub fn metrics_response(registry: &prometheus::Registry) -> Response {
    match metrics_text(registry) {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(err) => {
            let response = error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            );
            ErrorDetail::attach(response, "internal", &err)
        }
    }
}

/// One endpoint in a service's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// One line for people.
    pub about: &'static str,
}

impl Endpoint {
    /// `GET /metrics`, which every service has.
    pub const METRICS: Endpoint = Endpoint {
        method: "GET",
        path: "/metrics",
        about: "Prometheus metrics",
    };
    /// `GET /healthz`, which every service has, with its alias `/health`.
    pub const HEALTHZ: Endpoint = Endpoint {
        method: "GET",
        path: "/healthz",
        about: "liveness (alias: /health)",
    };
}

/// `GET /`: what this service is and which endpoints it has, so that `curl host:port/` answers
/// something useful (the reference harness's services answered there).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Index {
    pub service: &'static str,
    pub version: &'static str,
    pub endpoints: &'static [Endpoint],
}

impl IntoResponse for Index {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

/// The router's fallback: 404 `not_found`, naming the path.
pub async fn not_found(uri: Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", uri.path()),
    )
}

/// The router's fallback for a known path and another method: 405 `method_not_allowed`.
pub async fn method_not_allowed(method: Method) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("method {method} not allowed on this path"),
    )
}

/// Turns a handler panic into a 500 with the error body (code `internal`); the trace layer
/// logs the panic message at ERROR. The server keeps serving.
pub fn panic_guard() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(panic_response as fn(Box<dyn Any + Send + 'static>) -> Response)
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    // The trace layer logs the detail at ERROR; the client sees only "internal error".
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("handler panicked: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::routing::get;
    use std::time::Duration;
    use tower::{ServiceBuilder, ServiceExt};

    async fn boom() -> &'static str {
        panic!("kaboom")
    }

    #[tokio::test]
    async fn a_panicking_handler_gets_the_error_body_and_the_server_lives_on() {
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "fine" }))
            .layer(panic_guard())
            .layer(trace_layer());
        let response = app
            .clone()
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "internal");
        assert_eq!(
            json["error"]["message"], "internal error",
            "no panic detail leaks"
        );
        let response = app
            .oneshot(Request::get("/ok").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Log lines written by the subscriber under test.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            crate::sync::lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_trace_layer_logs_the_detail_a_handler_attached_and_the_client_never_sees_it() {
        async fn broken() -> Response {
            let response = error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "x");
            ErrorDetail::attach(response, "internal", &std::io::Error::other("disk on fire"))
        }
        let app = Router::new()
            .route("/broken", get(broken))
            .fallback(not_found)
            .layer(trace_layer());
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_ansi(false)
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .finish();
        let bodies = tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut bodies = Vec::new();
                for uri in ["/broken", "/nowhere"] {
                    let request = Request::get(uri).body(Body::empty()).unwrap();
                    let response = app.clone().oneshot(request).await.unwrap();
                    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                        .await
                        .unwrap();
                    bodies.push(String::from_utf8(body.to_vec()).unwrap());
                }
                bodies
            })
        });
        let logs = String::from_utf8(crate::sync::lock(&logs.0).clone()).unwrap();
        let line = |needle: &str| {
            logs.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_default()
        };
        assert!(line("disk on fire").contains("ERROR"), "{logs}");
        assert!(
            line("disk on fire").contains(r#"route="/broken""#),
            "in the request's span: {logs}"
        );
        assert!(line("no route for /nowhere").contains("DEBUG"), "{logs}");
        assert!(!bodies[0].contains("disk on fire") && bodies[0].contains("internal error"));
    }

    #[tokio::test]
    async fn fallbacks_and_metrics_answer_in_the_shared_shapes() {
        let registry = prometheus::Registry::new();
        let counter = prometheus::IntCounter::new("demo_total", "a counter").unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        counter.inc();
        let app = Router::new()
            .route(
                "/metrics",
                get(move || async move { metrics_response(&registry) }),
            )
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed);
        let call = |request: Request| {
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        let (status, text) = call(Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("demo_total 1"), "{text}");
        let (status, text) = call(Request::get("/nowhere").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(text.contains(r#""code":"not_found""#) && text.contains("/nowhere"));
        let (status, text) = call(Request::post("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(text.contains("method_not_allowed") && text.contains("POST"));
    }

    #[tokio::test]
    async fn layer_errors_are_classified() {
        let slow = ServiceBuilder::new()
            .timeout(Duration::from_millis(1))
            .service_fn(|_: ()| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, BoxError>(())
            });
        let err = slow.oneshot(()).await.unwrap_err();
        assert_eq!(LayerError::classify(err), LayerError::Timeout);
        let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
        assert_eq!(LayerError::classify(shed), LayerError::Overloaded);
        let other: BoxError = "broken".into();
        assert_eq!(
            LayerError::classify(other),
            LayerError::Other("broken".into())
        );
    }

    #[tokio::test]
    async fn layer_errors_answer_with_the_shared_codes() {
        for (err, status, code) in [
            (
                LayerError::Timeout,
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
            ),
            (
                LayerError::Overloaded,
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
            ),
            (
                LayerError::Other("x".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ] {
            let response = err.into_response();
            assert_eq!(response.status(), status);
            let retry_after = response
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .cloned();
            assert_eq!(retry_after.is_some(), code == "overloaded", "{code}");
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"]["code"], code);
        }
    }
}
