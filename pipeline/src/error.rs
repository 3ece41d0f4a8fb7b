//! What can go wrong in the local pipeline, with a stable code per kind.
//!
//! The pipeline serves no HTTP API of its own (each service it starts answers with its own
//! error body), so unlike the service crates there is no `IntoResponse` here: errors surface
//! in the autoscaler's logs and metrics (through [`autoscaler::TargetError`]) and on the
//! terminal.

use std::time::Duration;

use autoscaler::TargetError;

/// An error of the replica pool or of the demo's start-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A replica count outside the pool's bounds.
    #[error("{requested} replicas is outside the pool's range {min}..={max}")]
    OutOfRange { requested: u32, min: u32, max: u32 },
    /// No local port for a new replica.
    #[error("cannot listen on 127.0.0.1 for a new replica: {0}")]
    Bind(#[source] std::io::Error),
    /// The pool is shutting down and takes no more orders.
    #[error("the replica pool is shutting down")]
    ShuttingDown,
    /// A replica stopped by itself (the model could not be loaded, say).
    #[error("replica {url} stopped: {reason}")]
    ReplicaFailed { url: String, reason: String },
    /// The operating system refused a thread for a new replica.
    #[error("cannot start a thread for a new replica: {0}")]
    ReplicaThread(#[source] std::io::Error),
    /// No replica of the pool serves this URL.
    #[error("no replica serves {0}")]
    UnknownReplica(String),
    /// Replicas did not turn ready in time.
    #[error("{pending} replica(s) not ready after {timeout:?}")]
    NotReady { pending: usize, timeout: Duration },
    /// The HTTP client that probes replicas could not be built (TLS or resolver set-up).
    #[error("cannot build an HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// A setting that cannot work.
    #[error("invalid --{flag}: {reason}")]
    InvalidSetting { flag: &'static str, reason: String },
}

impl Error {
    /// A stable snake_case name for logs and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Error::OutOfRange { .. } => "out_of_range",
            Error::Bind(_) => "bind_failed",
            Error::ShuttingDown => "shutting_down",
            Error::UnknownReplica(_) => "unknown_replica",
            Error::ReplicaThread(_) => "replica_thread_failed",
            Error::ReplicaFailed { .. } => "replica_failed",
            Error::NotReady { .. } => "not_ready",
            Error::HttpClient(_) => "http_client",
            Error::InvalidSetting { .. } => "invalid_setting",
        }
    }

    pub(crate) fn invalid(flag: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidSetting {
            flag,
            reason: reason.into(),
        }
    }
}

impl From<Error> for TargetError {
    /// The autoscaler counts these under `autoscaler_scale_errors_total{code="unavailable"}`
    /// and retries at its next interval.
    fn from(err: Error) -> Self {
        TargetError::other(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case() {
        let errors = [
            Error::OutOfRange {
                requested: 9,
                min: 1,
                max: 5,
            },
            Error::Bind(std::io::Error::other("x")),
            Error::ShuttingDown,
            Error::ReplicaFailed {
                url: "u".into(),
                reason: "r".into(),
            },
            Error::NotReady {
                pending: 1,
                timeout: Duration::from_secs(1),
            },
            Error::HttpClient(reqwest::Client::new().get("not a url").build().unwrap_err()),
            Error::invalid("x", "y"),
            Error::UnknownReplica("u".into()),
            Error::ReplicaThread(std::io::Error::other("x")),
        ];
        for err in &errors {
            let code = err.code();
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
        let target: TargetError = Error::ShuttingDown.into();
        assert_eq!(target.code(), "unavailable");
    }
}
