//! Where the controller's numbers come from: the arrival rate, the queue, the pods' utilisation.
//!
//! A [`TelemetrySource`] produces one [`Telemetry`] sample per decision interval. Two sources
//! ship: [`PrometheusSource`] (the Prometheus HTTP API with configurable PromQL) and
//! [`ScrapeSource`] (the dispatcher's and inference replicas' own `/metrics`, rates from
//! counter deltas). The demo can implement the trait for anything else.

mod exposition;
mod prometheus;
mod scrape;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

pub use exposition::{Exposition, ExpositionError};
pub use prometheus::{PromQueries, PrometheusSource};
pub use scrape::{InferenceTargets, ScrapeSource};

/// One reading of the system. Every field but the time is optional: a source fills what it
/// can measure, and the circuit breaker decides whether what is missing matters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Telemetry {
    /// When the underlying data was measured (not when it was fetched).
    pub observed_at: Instant,
    /// Requests arriving per second (enqueued at the dispatcher).
    pub arrival_rate: Option<f64>,
    /// Requests waiting in the dispatcher's queue.
    pub queue_length: Option<f64>,
    /// Requests dispatched to inference and not finished.
    pub in_flight: Option<f64>,
    /// Mean busy fraction of the ready replicas' workers, 0..=1.
    pub utilisation: Option<f64>,
    /// Measured requests per second one replica completes while busy.
    pub service_rate_per_pod: Option<f64>,
    /// Replicas serving traffic.
    pub ready_replicas: Option<f64>,
}

impl Telemetry {
    /// A sample with only a time.
    pub fn empty(observed_at: Instant) -> Self {
        Self {
            observed_at,
            arrival_rate: None,
            queue_length: None,
            in_flight: None,
            utilisation: None,
            service_rate_per_pod: None,
            ready_replicas: None,
        }
    }

    /// Each field with its metric-style name, for validation and logs.
    pub fn fields(&self) -> [(Signal, Option<f64>); 6] {
        [
            (Signal::ArrivalRate, self.arrival_rate),
            (Signal::QueueLength, self.queue_length),
            (Signal::InFlight, self.in_flight),
            (Signal::Utilisation, self.utilisation),
            (Signal::ServiceRate, self.service_rate_per_pod),
            (Signal::ReadyReplicas, self.ready_replicas),
        ]
    }

    /// Removes one field.
    pub fn clear(&mut self, signal: Signal) {
        let slot = match signal {
            Signal::ArrivalRate => &mut self.arrival_rate,
            Signal::QueueLength => &mut self.queue_length,
            Signal::InFlight => &mut self.in_flight,
            Signal::Utilisation => &mut self.utilisation,
            Signal::ServiceRate => &mut self.service_rate_per_pod,
            Signal::ReadyReplicas => &mut self.ready_replicas,
        };
        *slot = None;
    }

    pub fn get(&self, signal: Signal) -> Option<f64> {
        match signal {
            Signal::ArrivalRate => self.arrival_rate,
            Signal::QueueLength => self.queue_length,
            Signal::InFlight => self.in_flight,
            Signal::Utilisation => self.utilisation,
            Signal::ServiceRate => self.service_rate_per_pod,
            Signal::ReadyReplicas => self.ready_replicas,
        }
    }
}

/// A field of [`Telemetry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Signal {
    ArrivalRate,
    QueueLength,
    InFlight,
    Utilisation,
    ServiceRate,
    ReadyReplicas,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::ArrivalRate => "arrivalRate",
            Signal::QueueLength => "queueLength",
            Signal::InFlight => "inFlight",
            Signal::Utilisation => "utilisation",
            Signal::ServiceRate => "serviceRatePerPod",
            Signal::ReadyReplicas => "readyReplicas",
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a source produced no sample this interval.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TelemetryError {
    /// The request failed (connection, timeout, a body cut short); the cause is its source,
    /// shared (`Arc`) so that the error stays `Clone`.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    #[error("{url} answered HTTP {status}: {detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("cannot parse the answer of {url}: {detail}")]
    Malformed { url: String, detail: String },
    #[error("not enough samples yet: {0}")]
    WarmingUp(String),
}

impl TelemetryError {
    /// [`TelemetryError::Unreachable`] with `cause` as its source.
    pub fn unreachable(
        url: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        TelemetryError::Unreachable {
            url: url.into(),
            source: Arc::from(cause.into()),
        }
    }

    /// Stable code for logs and status.
    pub fn code(&self) -> &'static str {
        match self {
            TelemetryError::Unreachable { .. } => "unreachable",
            TelemetryError::Status { .. } => "http_status",
            TelemetryError::Malformed { .. } => "malformed",
            TelemetryError::WarmingUp(_) => "warming_up",
        }
    }
}

/// Something that can be asked for a [`Telemetry`] sample.
///
/// `now` is the controller's clock (injected, so tests control time); sources that compute
/// rates from counter deltas divide by the difference of successive `now`s.
pub trait TelemetrySource: Send {
    /// The `source` label of `autoscaler_telemetry_errors_total`.
    fn name(&self) -> &'static str;

    /// Reads one sample.
    fn read(
        &mut self,
        now: Instant,
    ) -> impl Future<Output = Result<Telemetry, TelemetryError>> + Send;
}

/// Either shipped source, behind one type: what `serve` builds from its flags
/// (`AnySource::from_config`, next to the flags in `config.rs`), or what the demo picks.
#[derive(Debug)]
pub enum AnySource {
    Prometheus(PrometheusSource),
    Scrape(ScrapeSource),
}

impl TelemetrySource for AnySource {
    fn name(&self) -> &'static str {
        match self {
            AnySource::Prometheus(s) => s.name(),
            AnySource::Scrape(s) => s.name(),
        }
    }

    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        match self {
            AnySource::Prometheus(s) => s.read(now).await,
            AnySource::Scrape(s) => s.read(now).await,
        }
    }
}
