//! An open-loop load generator for the inference harness, with the latency store and the
//! reports.
//!
//! It turns a workload (requests per second, second by second) into `POST /enqueue` calls on
//! the dispatcher (or, with `--target infer|v2`, into inference requests straight to a model
//! server, each answer deciding its request), each sent at its intended time whatever happened to the earlier ones, so a
//! slow system cannot slow the generator down and hide its own latency (coordinated
//! omission). What happened to every item comes back as a latency record, pulled from the
//! dispatcher's `GET /records` or pushed by it to `POST /storeLatency`; records are matched to requests by id (`<runId>-<seq>`) and aggregated into HDR histograms
//! and per-second bins, so memory stays flat for millions of requests. A report folder holds
//! `stats.json`, PNG plots and a `report.html`.
//!
//! Entry points: [`run`](fn@run) (the HTTP server of `load-tester serve`),
//! [`run_load_test`] (one test with its own `/storeLatency` receiver: the CLI and the local
//! demo), [`run_command::run`] (`load-tester run`) and [`report_command::run`]
//! (`load-tester report`, a report rebuilt from a run's journal).
//!
//! # Layout
//! Service skeleton:
//! - [`config`]: the command line and environment (clap), validated into settings.
//! - [`state`]: what the handlers share (run store, metrics, control settings).
//! - [`routes`]: the router, the handlers and their bodies, the bearer-token check.
//! - [`server`]: `serve` with graceful shutdown, the receiver alone, [`run_load_test`].
//! - [`error`]: the error enum, its codes and its one `IntoResponse`.
//! - [`metrics`]: Prometheus metrics.
//!
//! Domain, from the bottom up:
//! - [`workload`]: the workload file format and its errors.
//! - [`base_url`]: `http://` base URLs and their endpoints.
//! - [`target`]: what the requests go to (the dispatcher, or a model server directly: this
//!   project's inference or any v2 server), the direct requests and how an answer reads.
//! - [`image_pool`]: the image pool, read and base64-encoded once.
//! - [`schedule`]: the arrival processes and the plan of intended send times.
//! - [`ledger`]: one run's per-request flags, histograms and per-second bins.
//! - [`sampler`]: time series sampled during a run (dispatcher `/stats`, Prometheus gauges).
//! - [`delivery`]: the two paths records come by (push, pull) and the run's `delivery` stats.
//! - [`journal`]: the run journal (`journal.jsonl`), its writer thread and its parser.
//! - [`store`]: runs, progress and the record intake behind `/storeLatency`.
//! - [`run_events`]: a run's events, each written to its journal and then its ledger.
//! - [`pull`]: the pull path, a run's records fetched from the dispatcher's `GET /records`.
//! - [`sender`]: the pacer thread and the send tasks (open loop).
//! - [`stats`]: the numbers of `stats.json` and their names.
//! - [`threshold`]: `--fail-on` conditions.
//! - [`report`]: plots and `report.html`.
//! - [`run_options`]: what one run is asked to do.
//! - [`run`](mod@run): the run engine, one test from start to report (no HTTP serving).
//! - [`run_command`]: runs `load-tester run` (progress bar, summary, exit code); named apart
//!   from [`config`], which holds the clap types of every command.
//! - [`rebuild`]: a run rebuilt from its journal, the records collected after a crash.
//! - [`report_command`]: runs `load-tester report --run-dir` (a rebuilt report).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod base_url;
pub mod config;
pub mod delivery;
pub mod error;
pub mod image_pool;
pub mod journal;
pub mod ledger;
pub mod metrics;
pub mod pull;
pub mod rebuild;
pub mod report;
pub mod report_command;
pub mod routes;
pub mod run;
pub mod run_command;
pub mod run_events;
pub mod run_options;
pub mod sampler;
pub mod schedule;
pub mod sender;
pub mod server;
pub mod state;
pub mod stats;
pub mod store;
pub mod target;
pub mod threshold;
/// The workload file format, shared with the simulator (re-exported from `harness-core`).
pub use harness_core::workload;

pub use config::{Cli, Command, GeneratorArgs, ReportArgs, RunArgs, ServeConfig};
pub use error::Error;
pub use image_pool::{ImagePool, PoolImage};
pub use report::ReportFiles;
pub use run::{RunOptions, RunOutcome};
pub use sampler::{FnSampler, Sample, Sampler, SeriesKind};
pub use schedule::{ArrivalProcess, Arrivals};
pub use server::{run, run_load_test};
pub use state::AppState;
pub use stats::{LatencySummary, Stats};
pub use store::{Phase, Progress};
pub use workload::Workload;
