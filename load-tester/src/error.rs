//! Errors of the load tester, with a stable `code()` each and the one `IntoResponse` that turns
//! them into `{"error":{"code","message"}}` bodies.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use harness_core::api_error::{ErrorDetail, error_response};

use crate::base_url::UrlError;
use crate::image_pool::PoolError;
use crate::journal::JournalError;
use crate::report::ReportError;
use crate::schedule::UnknownArrivals;
use crate::workload::WorkloadError;

/// Why one `GET /records` on the dispatcher brought nothing.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// 404 or 405: this dispatcher has no pull path.
    #[error("the dispatcher has no GET /records ({0})")]
    NotOffered(reqwest::StatusCode),
    #[error("GET /records answered {status}: {body}")]
    Status {
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("GET /records failed: {}", cause_chain(.0))]
    Request(#[source] reqwest::Error),
    /// Collecting a run's records after a crash took longer than allowed.
    #[error("the dispatcher still had records after {0:?} of collecting")]
    Incomplete(std::time::Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    ImagePool(#[from] PoolError),
    /// The `arrivals` of a request body is neither `uniform` nor `poisson`.
    #[error("invalid request: {0}")]
    Arrivals(#[from] UnknownArrivals),
    /// The `dispatcherUrl` of a request body. The message keeps the words of the
    /// configuration error it once was wrapped in.
    #[error("invalid request: invalid configuration: {0}")]
    DispatcherUrl(#[source] UrlError),
    /// A path segment axum could not extract: the client's fault (not UTF-8) or, for any
    /// other status, a route that does not match its handler (a bug).
    #[error("{} {}", path_prefix(.0), .0.body_text())]
    Path(#[from] PathRejection),
    /// Bad JSON, wrong content type, body too large: axum's own rejections.
    #[error("{}", .0.body_text())]
    Json(#[from] JsonRejection),
    #[error("run {0} is still active; wait for it to finish")]
    RunActive(String),
    #[error("no run with id {0:?}")]
    RunNotFound(String),
    #[error("no run has been started yet")]
    NoRun,
    #[error("no route for {0}")]
    NotFound(String),
    /// The message carries the whole cause chain: reqwest's own message is generic and the
    /// reason ("Connection refused") is at the bottom.
    #[error("the dispatcher at {url} is unreachable: {}", cause_chain(.source))]
    DispatcherUnreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// A model server of `--target infer|v2` did not answer the preflight at all.
    #[error("the target at {url} is unreachable: {}", cause_chain(.source))]
    TargetUnreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The `target`, `url` or `modelName` of a request body does not make a target.
    #[error("invalid request: {0}")]
    InvalidTarget(String),
    /// A pool image's request to a direct target could not be built.
    #[error("internal error: cannot build the target's request: {0}")]
    TargetRequest(#[source] harness_core::oip::CodecError),
    /// `--record-delivery pull` against a dispatcher whose `GET /records` does not answer.
    #[error("cannot pull records from {url}: {source}")]
    RecordsUnavailable {
        url: String,
        #[source]
        source: PullError,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A base URL of the settings (`--dispatcher-url`, `--sample-metric`).
    #[error("invalid configuration: {0}")]
    Url(#[from] UrlError),
    /// The dispatcher URL does not make a URI for the send path.
    #[error("invalid configuration: invalid dispatcher URL {url}: {source}")]
    EnqueueUri {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("cannot write the report: {0}")]
    Report(#[from] ReportError),
    /// The run journal cannot be created, or (rebuilding a report) read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("internal error: cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// `invalid request:` for a client's path, `internal error:` for a server bug.
fn path_prefix(rejection: &PathRejection) -> &'static str {
    if rejection.status().is_client_error() {
        "invalid request:"
    } else {
        "internal error:"
    }
}

/// An error and its causes, `: `-separated.
fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

impl Error {
    /// The stable, machine-readable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Workload(_) => "invalid_workload",
            Error::ImagePool(_) => "image_pool_unavailable",
            Error::Arrivals(_) | Error::DispatcherUrl(_) | Error::InvalidTarget(_) => {
                "invalid_request"
            }
            Error::Path(rejection) if rejection.status().is_client_error() => "invalid_request",
            Error::Path(_) => "internal",
            Error::Json(JsonRejection::MissingJsonContentType(_)) => "unsupported_media_type",
            Error::Json(JsonRejection::BytesRejection(_))
                if self.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                "body_too_large"
            }
            Error::Json(_) => "invalid_json",
            Error::RunActive(_) => "run_active",
            Error::RunNotFound(_) => "run_not_found",
            Error::NoRun => "no_run",
            Error::NotFound(_) => "not_found",
            Error::DispatcherUnreachable { .. } => "dispatcher_unreachable",
            Error::TargetUnreachable { .. } => "target_unreachable",
            Error::TargetRequest(_) => "internal",
            Error::RecordsUnavailable { .. } => "records_unavailable",
            Error::Config(_) | Error::Url(_) | Error::EnqueueUri { .. } => "invalid_config",
            Error::Report(_) => "report_failed",
            Error::Journal(_) => "journal_failed",
            Error::HttpClient(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Workload(_)
            | Error::Arrivals(_)
            | Error::DispatcherUrl(_)
            | Error::InvalidTarget(_) => StatusCode::BAD_REQUEST,
            Error::Path(rejection) if rejection.status().is_client_error() => {
                StatusCode::BAD_REQUEST
            }
            Error::Json(rejection) => rejection.status(),
            Error::RunActive(_) => StatusCode::CONFLICT,
            Error::RunNotFound(_) | Error::NoRun | Error::NotFound(_) => StatusCode::NOT_FOUND,
            // The dispatcher URL comes from the request (or its default): the client can fix
            // it, so it gets the reason.
            Error::DispatcherUnreachable { .. }
            | Error::TargetUnreachable { .. }
            | Error::RecordsUnavailable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            // The images folder is the server's own configuration: logged, not shown.
            Error::ImagePool(_)
            | Error::Path(_)
            | Error::Config(_)
            | Error::Url(_)
            | Error::EnqueueUri { .. }
            | Error::Report(_)
            | Error::Journal(_)
            | Error::TargetRequest(_)
            | Error::HttpClient(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The client sees the code and, below 500, the message; the detail with its causes goes to
/// the trace layer, which logs it (at ERROR for a 500).
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let response = error_response(self.status(), self.code(), self.to_string());
        ErrorDetail::attach(response, self.code(), &self)
    }
}
