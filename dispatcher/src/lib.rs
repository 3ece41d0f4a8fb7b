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
//! Each module uses only those listed before it (`error` and `metrics` use none).
//! - [`balancer`]: the endpoints, their health and ejection, and the least-in-flight choice.
//! - [`upstream_protocol`]: the harness and v2 (Open Inference Protocol) requests and answers.
//! - [`config`]: `Config` (flags and env vars) validated into `Settings`.
//! - [`error`]: every error an HTTP client can get, with its code and status.
//! - [`metrics`]: the Prometheus metrics and the per-reason totals of `/stats`.
//! - [`queue`]: the FIFO bounded by count and bytes.
//! - [`endpoints`]: where endpoints come from (list, DNS, watch channel), and the `/readyz` prober.
//! - [`outbox`]: the bounded outbox of latency records and their delivery to the load tester.
//! - [`record`]: the latency record of an item, and the recorder every finished item goes to.
//! - [`upstream`]: sending one item to inference: attempts, retries and the outcome.
//! - [`drain`]: the paced drain and its catch-up rule.
//! - [`state`]: `AppState`, what the handlers and the background tasks share.
//! - [`enqueue`]: the `/enqueue` body, parsed without copying the image.
//! - [`routes`]: the router, its middleware and the handlers.
//! - `server`: start-up, serving and the shutdown sequence.

pub mod balancer;
pub mod config;
pub mod drain;
pub mod endpoints;
pub mod enqueue;
pub mod error;
pub mod metrics;
pub mod outbox;
pub mod queue;
pub mod record;
pub mod routes;
mod server;
pub mod state;
pub mod upstream;
pub mod upstream_protocol;

use std::future::Future;

use tokio::net::TcpListener;

pub use config::{Config, ConfigError, Settings};
pub use endpoints::EndpointSource;
pub use error::Error;
pub use routes::app;
pub use state::AppState;

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
    server::serve(listener, settings, source, shutdown).await
}

/// Like [`run`], with the endpoints from `source` instead of the configuration's.
pub async fn run_with_endpoints(
    listener: TcpListener,
    config: Config,
    source: EndpointSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = config.validate()?;
    server::serve(listener, settings, source, shutdown).await
}
