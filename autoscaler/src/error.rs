//! Every way an HTTP request to the autoscaler can fail, with its stable code and status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use harness_core::api_error::error_response;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error(
        "control endpoints are disabled on a non-loopback address without a token: set \
         AUTH_TOKEN, or ALLOW_UNAUTHENTICATED=true"
    )]
    ControlDisabled,
    #[error("no route for this path")]
    NotFound,
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("no decision has been made yet")]
    NoStatusYet,
    /// `/metrics` could not be rendered; the message carries the cause, as it always has.
    #[error("internal error: {0}")]
    Internal(#[source] prometheus::Error),
}

impl Error {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized => "unauthorized",
            Error::ControlDisabled => "control_disabled",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::NoStatusYet => "no_status_yet",
            Error::Internal(_) => "internal",
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::ControlDisabled => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::NoStatusYet => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let mut response = error_response(self.status(), self.code(), self.to_string());
        if matches!(self, Error::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
