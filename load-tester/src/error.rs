//! Errors of the load tester, with a stable `code()` each and the one `IntoResponse` that turns
//! them into `{"error":{"code","message"}}` bodies.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use harness_core::api_error::error_response;

use crate::pool::PoolError;
use crate::workload::WorkloadError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    ImagePool(#[from] PoolError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Bad JSON, wrong content type, body too large: axum's own rejections.
    #[error("{}", .0.body_text())]
    Json(#[from] JsonRejection),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("run {0} is still active; wait for it to finish")]
    RunActive(String),
    #[error("no run with id {0:?}")]
    RunNotFound(String),
    #[error("no run has been started yet")]
    NoRun,
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the dispatcher at {url} is unreachable: {reason}")]
    DispatcherUnreachable { url: String, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot write the report: {0}")]
    Report(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable, machine-readable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Workload(_) => "invalid_workload",
            Error::ImagePool(_) => "image_pool_unavailable",
            Error::InvalidRequest(_) => "invalid_request",
            Error::Json(JsonRejection::MissingJsonContentType(_)) => "unsupported_media_type",
            Error::Json(JsonRejection::BytesRejection(_))
                if self.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                "body_too_large"
            }
            Error::Json(_) => "invalid_json",
            Error::Unauthorized => "unauthorized",
            Error::RunActive(_) => "run_active",
            Error::RunNotFound(_) => "run_not_found",
            Error::NoRun => "no_run",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::DispatcherUnreachable { .. } => "dispatcher_unreachable",
            Error::Config(_) => "invalid_config",
            Error::Report(_) => "report_failed",
            Error::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Workload(_) | Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Error::Json(rejection) => rejection.status(),
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::RunActive(_) => StatusCode::CONFLICT,
            Error::RunNotFound(_) | Error::NoRun | Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            // The dispatcher URL comes from the request (or its default): the client can fix
            // it, so it gets the reason.
            Error::DispatcherUnreachable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            // The images folder is the server's own configuration: logged, not shown.
            Error::ImagePool(_) | Error::Config(_) | Error::Report(_) | Error::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        // Client errors (a segment that is not UTF-8) say why; the others are a route that
        // does not match its handler, a bug.
        if rejection.status().is_client_error() {
            Error::InvalidRequest(rejection.body_text())
        } else {
            Error::Internal(rejection.body_text())
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, code = self.code(), "request failed");
        }
        let mut response = error_response(status, self.code(), self.to_string());
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
