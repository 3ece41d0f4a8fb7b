//! The whole pipeline in one process, without a cluster or containers: a pool of inference
//! replicas, the dispatcher in front of them, the load tester driving a workload through it,
//! and the autoscaler resizing the pool, all talking HTTP on `127.0.0.1` exactly as they do in
//! Kubernetes. `cargo demo` runs it and writes the load tester's report.
//!
//! Every service runs through the same library entry point its binary uses
//! ([`inference::run`], [`dispatcher::run_with_endpoints`], [`load_tester::run_load_test`],
//! [`autoscaler::run_controller`]); what this crate adds is the local stand-in for a
//! Deployment ([`ReplicaPool`]) and the wiring. Entry point: [`demo::run`].
//!
//! # Layout
//! - [`config`]: `pipeline demo` flags, validated into [`DemoSettings`].
//! - [`replica_pool`]: the local replica pool (replicas, supervisor), the autoscaler's scale target.
//! - [`autoscale`]: the autoscaler's controller on the pool, and its telemetry source.
//! - [`prometheus`]: `--prometheus`, a real Prometheus server scraping every service.
//! - [`reshape`]: `--duration-scale` and `--rate-scale`, a workload stretched in time or load.
//! - [`demo`]: start everything, run the workload, stop everything, in order.
//! - [`summary`]: the figures printed at the end.
//! - [`error`]: the [`Error`] enum and its codes.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod autoscale;
pub mod config;
pub mod demo;
pub mod error;
pub mod prometheus;
pub mod replica_pool;
pub mod reshape;
pub mod summary;

pub use config::{Cli, Command, DemoArgs, DemoSettings};
pub use demo::{DemoOutcome, Services, run, run_observed};
pub use error::Error;
pub use replica_pool::{PoolSettings, ReplicaPool, ScaleEvent};
