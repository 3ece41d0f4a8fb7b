//! Every way an HTTP request to the dispatcher can fail, with its stable code and status.
//!
//! Upstream failures of queued items are not here: they are data (an outcome in a latency
//! record), not errors of the request that enqueued the item.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use harness_core::api_error::{ErrorDetail, error_response, overloaded_response};
use harness_core::image_payload::PayloadError;
use harness_core::wire::EnqueueShapeError;

/// An error answered to an HTTP client. Variants with a cause keep it as their `source()`;
/// the message a client sees includes the cause's text where it always did.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("request body is not valid JSON for /enqueue: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error(
        "no image: send {{\"image\":\"<base64>\"}} or {{\"message\":{{\"imageBase64\":\"<base64>\"}}}}"
    )]
    MissingImage,
    #[error("both \"image\" and \"message.imageBase64\" given; send one")]
    AmbiguousImage,
    #[error("{0}")]
    InvalidImage(#[from] PayloadError),
    #[error("id must be 1 to {max} bytes")]
    InvalidId { max: usize },
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BadBody(#[source] BytesRejection),
    #[error("queue is full ({length} items)")]
    QueueFull {
        length: usize,
        retry_after_secs: u32,
    },
    #[error("queue holds too many bytes ({bytes} bytes)")]
    QueueBytesFull { bytes: usize, retry_after_secs: u32 },
    #[error("the dispatcher is shutting down")]
    ShuttingDown,
    #[error("no inference endpoint is ready")]
    NoReadyEndpoint,
    #[error("invalid query for GET /records: {reason}")]
    InvalidRecordsQuery { reason: String },
}

impl Error {
    /// The stable machine-readable code (also the `reason` label of `dispatcher_rejected_total`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidJson(_) => "invalid_json",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::MissingImage => "missing_image",
            Error::AmbiguousImage => "ambiguous_image",
            Error::InvalidImage(e) => e.code(),
            Error::InvalidId { .. } => "invalid_id",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::BadBody(_) => "bad_body",
            Error::QueueFull { .. } => "queue_full",
            Error::QueueBytesFull { .. } => "queue_bytes_full",
            Error::ShuttingDown => "shutting_down",
            Error::NoReadyEndpoint => "no_ready_endpoint",
            Error::InvalidRecordsQuery { .. } => "invalid_query",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidJson(_)
            | Error::MissingImage
            | Error::AmbiguousImage
            | Error::InvalidImage(_)
            | Error::InvalidId { .. }
            | Error::BadBody(_)
            | Error::InvalidRecordsQuery { .. } => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::QueueFull { .. }
            | Error::QueueBytesFull { .. }
            | Error::ShuttingDown
            | Error::NoReadyEndpoint => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Error::QueueFull {
                retry_after_secs, ..
            }
            | Error::QueueBytesFull {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            // A replacement replica (or this one after its restart) is the place to retry.
            Error::ShuttingDown => Some(5),
            Error::NoReadyEndpoint => Some(1),
            _ => None,
        }
    }
}

impl From<EnqueueShapeError> for Error {
    fn from(e: EnqueueShapeError) -> Self {
        match e {
            EnqueueShapeError::MissingImage => Error::MissingImage,
            EnqueueShapeError::AmbiguousImage => Error::AmbiguousImage,
        }
    }
}

/// The client sees the code and the message; the detail with its causes rides in the
/// response's extensions for the trace layer's log.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let response = match self.retry_after_secs() {
            Some(secs) => overloaded_response(self.code(), self.to_string(), secs),
            None => error_response(self.status(), self.code(), self.to_string()),
        };
        ErrorDetail::attach(response, self.code(), &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn overload_carries_retry_after() {
        let r = Error::QueueFull {
            length: 3,
            retry_after_secs: 2,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = Error::ShuttingDown.into_response();
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        let r = Error::NoReadyEndpoint.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn payload_errors_keep_their_codes() {
        let e = Error::from(harness_core::image_payload::validate("a*").expect_err("invalid"));
        assert_eq!(e.code(), "invalid_base64");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
