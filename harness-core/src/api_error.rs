//! The one error body of the project: `{"error":{"code":"invalid_base64","message":"..."}}`.
//!
//! Each crate keeps its own `thiserror` enum with a stable `code()` per variant and turns it into
//! a response with [`error_response`]; clients can match on `code` and show `message`.
//!
//! Building a response never logs. An error whose detail matters to the operator attaches it
//! with [`ErrorDetail::attach`]; the request's trace layer (`http::trace_layer`) logs it
//! inside the request's span (axum's error-handling pattern), at ERROR for a 500 and at DEBUG
//! otherwise.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: ApiErrorDetail,
}

/// `code` is stable and machine-readable (snake_case); `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorDetail {
    pub code: String,
    pub message: String,
}

impl ApiErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ApiErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// Builds an error response. 5xx responses never carry internal detail: the caller attaches it
/// ([`ErrorDetail::attach`]) for the log and the client sees `internal error`. Every error
/// response carries its code in an [`ErrorDetail`], so layers can count responses by code.
pub fn error_response(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response {
    let message = message.into();
    let detail = ErrorDetail::plain(code, message.as_str());
    let shown = if hides_detail(status) {
        "internal error".to_owned()
    } else {
        message
    };
    let mut response = (status, Json(ApiErrorBody::new(code, shown))).into_response();
    response.extensions_mut().insert(detail);
    response
}

/// Whether a response with this status shows the client only "internal error": a 5xx that is
/// not overload. The trace layer logs exactly these at ERROR, since their detail is nowhere else.
pub fn hides_detail(status: StatusCode) -> bool {
    status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE
}

/// A 503 with `Retry-After`, for overload: the client should try again later or elsewhere.
pub fn overloaded_response(
    code: &'static str,
    message: impl Into<String>,
    retry_after_secs: u32,
) -> Response {
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, code, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The error behind a response, with its chain of causes, for the trace layer to log. Clients
/// never see it.
#[derive(Debug, Clone)]
pub struct ErrorDetail {
    code: &'static str,
    chain: Arc<str>,
}

impl ErrorDetail {
    /// Renders `err` and its sources as `outer: cause: root cause`.
    pub fn new(code: &'static str, err: &(dyn StdError + 'static)) -> Self {
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // thiserror's `{0}` formats often repeat the cause already; say each thing once.
            if !chain.ends_with(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            source = cause.source();
        }
        Self {
            code,
            chain: chain.into(),
        }
    }

    /// A detail that is only a message (a refusal built without an error value).
    pub fn plain(code: &'static str, message: impl Into<Arc<str>>) -> Self {
        Self {
            code,
            chain: message.into(),
        }
    }

    /// Attaches the detail of `err` to `response`, for the trace layer to log.
    pub fn attach(
        mut response: Response,
        code: &'static str,
        err: &(dyn StdError + 'static),
    ) -> Response {
        response.extensions_mut().insert(Self::new(code, err));
        response
    }

    /// The response's code, for layers that count responses by outcome.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load the model")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_detail_keeps_the_chain_of_causes() {
        let err = Outer(std::io::Error::other("disk on fire"));
        let response = ErrorDetail::attach(
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "x"),
            "internal",
            &err,
        );
        let detail = response.extensions().get::<ErrorDetail>().unwrap();
        assert_eq!(detail.to_string(), "cannot load the model: disk on fire");
        assert_eq!(detail.code(), "internal");
    }

    #[test]
    fn body_has_the_documented_shape() {
        let json = serde_json::to_value(ApiErrorBody::new("invalid_base64", "bad")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "invalid_base64", "message": "bad"}})
        );
    }

    #[test]
    fn internal_errors_hide_detail_but_overload_does_not() {
        let r = error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "db exploded");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = overloaded_response("queue_full", "queue is full", 1);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
