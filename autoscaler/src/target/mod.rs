//! What gets scaled: anything with a replica count that can be read and set.
//!
//! [`DeploymentTarget`] scales a Kubernetes Deployment through its `scale` subresource; the
//! local demo implements [`ScaleTarget`] for its in-process replica pool.

mod kube;

use std::future::Future;
use std::sync::Arc;

pub use self::kube::DeploymentTarget;

/// Why the target could not be read or scaled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// The target does not exist (yet): the controller warns and retries next interval.
    #[error("{0} not found")]
    NotFound(String),
    /// The API refused (RBAC, conflict, validation, ...).
    #[error("API error {status} {reason}: {message}")]
    Api {
        status: u16,
        reason: String,
        message: String,
    },
    /// No cluster configuration: neither in-cluster nor a local kubeconfig.
    #[error("no Kubernetes configuration: {0}")]
    NoConfig(#[source] Arc<::kube::config::KubeconfigError>),
    /// Anything else: connection, timeout, a malformed answer, a pool that is shutting down.
    /// Shared (`Arc`) so that the error stays `Clone` with its cause.
    #[error("{0}")]
    Other(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl TargetError {
    /// [`TargetError::Other`] with `cause` as its source.
    pub fn other(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        TargetError::Other(Arc::from(cause.into()))
    }

    /// The `code` label of `autoscaler_scale_errors_total`.
    pub fn code(&self) -> &'static str {
        match self {
            TargetError::NotFound(_) => "not_found",
            TargetError::Api { status: 403, .. } => "forbidden",
            TargetError::Api { status: 409, .. } => "conflict",
            TargetError::Api { .. } => "api_error",
            TargetError::NoConfig(_) | TargetError::Other(_) => "unavailable",
        }
    }
}

/// A scalable thing: a Deployment, or the demo's local replica pool.
///
/// Implementations write `async fn` for both methods; the futures must be `Send` because the
/// controller runs on a multi-threaded runtime.
pub trait ScaleTarget: Send + Sync {
    /// A short description for logs (`deployment default/inference`).
    fn describe(&self) -> String;

    /// The replica count the target is set to (desired, including replicas still starting).
    fn current_replicas(&self) -> impl Future<Output = Result<u32, TargetError>> + Send;

    /// Sets the replica count. Called only when it differs from [`Self::current_replicas`].
    fn scale_to(&self, replicas: u32) -> impl Future<Output = Result<(), TargetError>> + Send;
}

impl<T: ScaleTarget> ScaleTarget for Arc<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }

    fn current_replicas(&self) -> impl Future<Output = Result<u32, TargetError>> + Send {
        (**self).current_replicas()
    }

    fn scale_to(&self, replicas: u32) -> impl Future<Output = Result<(), TargetError>> + Send {
        (**self).scale_to(replicas)
    }
}
