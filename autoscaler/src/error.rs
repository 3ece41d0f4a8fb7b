//! Every way an HTTP request to the autoscaler can fail, with its stable code and status. The
//! shared answers (bearer token, 404, 405, `/metrics`, limits) come from `harness-core`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use harness_core::api_error::{ErrorDetail, error_response};

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no decision has been made yet")]
    NoStatusYet,
}

impl Error {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NoStatusYet => "no_status_yet",
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NoStatusYet => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The detail goes to the trace layer, which logs it.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let response = error_response(self.status(), self.code(), self.to_string());
        ErrorDetail::attach(response, self.code(), &self)
    }
}
