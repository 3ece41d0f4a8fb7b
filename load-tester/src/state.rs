//! What the handlers share: the run store (fed by `/storeLatency`), the metrics and, in
//! `load-tester serve`, the control settings and the tasks of the runs it started.

use std::sync::Arc;

use harness_core::auth::ControlAccess;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServeConfig;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::RunStore;

/// What the control endpoints need beyond the receiver.
pub(crate) struct Control {
    pub config: ServeConfig,
    /// Who may call `/runLoadTest` and `/generateReport`.
    pub access: ControlAccess,
    /// Serialises run starts so that two requests cannot both pass the "no active run" check.
    pub start_lock: tokio::sync::Mutex<()>,
    /// Cancelled at shutdown: stops every run's sending.
    pub shutdown: CancellationToken,
    /// Run tasks, awaited at shutdown so their reports can still be generated.
    pub tasks: TaskTracker,
}

impl Control {
    pub(crate) fn new(config: ServeConfig, access: ControlAccess) -> Self {
        Self {
            config,
            access,
            start_lock: tokio::sync::Mutex::new(()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<RunStore>,
    pub metrics: Metrics,
    pub(crate) control: Option<Arc<Control>>,
}

impl AppState {
    /// State of a receiver-only server (no control endpoints).
    pub fn receiver(store: Arc<RunStore>, metrics: Metrics) -> Self {
        Self {
            store,
            metrics,
            control: None,
        }
    }

    /// State of `load-tester serve`: a fresh store and the control endpoints.
    pub(crate) fn serve(control: Arc<Control>) -> Self {
        Self {
            store: Arc::new(RunStore::new()),
            metrics: Metrics::new(),
            control: Some(control),
        }
    }

    pub(crate) fn control(&self) -> Result<&Arc<Control>, Error> {
        self.control
            .as_ref()
            .ok_or_else(|| Error::NotFound("control endpoints are not served here".into()))
    }
}
