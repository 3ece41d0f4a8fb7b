//! The dispatcher: a bounded in-memory queue between the load tester and the inference pods.
//!
//! `POST /enqueue` takes base64 images as fast as the network brings them, validates them
//! cheaply and queues them; a drain sends them to inference at `--drain-rate` (paced from a
//! fixed start, never more than `--max-in-flight` per endpoint), balancing by least in-flight
//! over a static list, a DNS name (a Kubernetes headless Service) or a watch channel; every item
//! ends in a latency record reported to the load tester's `/storeLatency`. Entry points:
//! [`run`] (what `main` calls), [`run_with_endpoints`] (the local demo passes its pool), and
//! [`app`] for handler tests.
//!
//! # Layout
//! - [`config`]: `Config` (flags and env vars) validated into `Settings`.
//! - [`routes`]: the HTTP API and its middleware; [`enqueue`]: the `/enqueue` body, parsed
//!   without copying the image; [`error`]: the error responses.
//! - [`queue`]: the FIFO bounded by count and bytes.
//! - [`drain`]: the paced drain and its catch-up rule.
//! - [`balancer`]: endpoint health, ejection and the least-in-flight choice;
//!   [`endpoints`]: where endpoints come from, and the `/readyz` prober.
//! - [`upstream`]: attempts, retries and outcomes; [`record`]: the latency record of an item.
//! - [`report`]: the outbox and its delivery to the load tester.
//! - [`metrics`]: Prometheus metrics; [`service`]: the state shared by all of the above.
//! - `lifecycle`: start-up and the shutdown sequence.

pub mod balancer;
pub mod config;
pub mod drain;
pub mod endpoints;
pub mod enqueue;
pub mod error;
mod lifecycle;
pub mod metrics;
pub mod queue;
pub mod record;
pub mod report;
pub mod routes;
pub mod service;
pub mod upstream;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::{Config, ConfigError, Settings};
pub use endpoints::EndpointSource;
pub use error::Error;
pub use routes::app;
pub use service::AppState;

/// Runs a dispatcher on `listener` with the endpoints of `config` (`--inference-url` or
/// `--inference-dns`) until `shutdown` completes and the queue is drained (or
/// `--shutdown-timeout` passes).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = config.validate()?;
    let source = EndpointSource::from(&settings.endpoints);
    lifecycle::serve(listener, settings, source, shutdown).await
}

/// Like [`run`], with the endpoints from `source` instead of the configuration's.
pub async fn run_with_endpoints(
    listener: TcpListener,
    config: Config,
    source: EndpointSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = config.validate()?;
    lifecycle::serve(listener, settings, source, shutdown).await
}
