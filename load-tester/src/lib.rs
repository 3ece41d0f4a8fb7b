//! An open-loop load generator for the inference harness, with the latency store and the
//! reports.
//!
//! It turns a workload (requests per second, second by second) into `POST /enqueue` calls on
//! the dispatcher, each sent at its intended time whatever happened to the earlier ones, so a
//! slow system cannot slow the generator down and hide its own latency (coordinated
//! omission). The dispatcher reports what happened to every item to `POST /storeLatency`;
//! records are matched to requests by id (`<runId>-<seq>`) and aggregated into HDR histograms
//! and per-second bins, so memory stays flat for millions of requests. A report folder holds
//! `stats.json`, PNG plots and a `report.html`.
//!
//! Entry points: [`run_load_test`] (library; the CLI and the local demo), [`run`] (the HTTP
//! server of `load-tester serve`) and [`cli::run`] (`load-tester run`).
//!
//! # Layout
//! - [`workload`]: the workload file format and its errors.
//! - [`pool`]: the image pool, read and base64-encoded once.
//! - [`schedule`]: the plan of intended send times (uniform or Poisson arrivals).
//! - [`sender`]: the pacer thread and the send tasks (open loop).
//! - [`ledger`]: one run's per-request flags, histograms and per-second bins.
//! - [`store`]: runs, progress and the `/storeLatency` intake.
//! - [`stats`]: the numbers of `stats.json`.
//! - [`sampler`]: time series sampled during a run (dispatcher `/stats`, Prometheus gauges).
//! - [`report`]: plots and `report.html`.
//! - [`run`](mod@run): one test from start to report.
//! - [`server`], [`routes`]: the HTTP API.
//! - [`config`], [`cli`], [`threshold`]: command line, `load-tester run`, `--fail-on`.
//! - [`error`], [`metrics`]: error responses and Prometheus metrics.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod config;
pub mod error;
pub mod ledger;
pub mod metrics;
pub mod pool;
pub mod report;
pub mod routes;
pub mod run;
pub mod sampler;
pub mod schedule;
pub mod sender;
pub mod server;
pub mod stats;
pub mod store;
pub mod threshold;
/// The workload file format, shared with the simulator (re-exported from `harness-core`).
pub use harness_core::workload;

pub use config::{Cli, Command, GeneratorArgs, RunArgs, ServeConfig};
pub use error::Error;
pub use pool::{ImagePool, PoolImage};
pub use report::ReportFiles;
pub use run::{RunOptions, RunOutcome, run_load_test};
pub use sampler::{FnSampler, Sample, Sampler, SeriesKind};
pub use schedule::Arrivals;
pub use server::run;
pub use stats::{LatencySummary, Stats};
pub use store::{Phase, Progress};
pub use workload::Workload;
