//! What every service of the inference load-testing harness shares, and nothing more.
//!
//! The services (`inference`, `dispatcher`, `load-tester`, `autoscaler`) talk to each other over
//! HTTP with camelCase JSON. The types of that contract live here so that a change to the wire
//! format is one change, seen by every side at compile time.
//!
//! # Layout
//! - [`wire`]: request and response bodies of the HTTP contract (`/infer`, `/enqueue`,
//!   `/storeLatency`, `/stats`); [`outcome`]: the typed outcome of a latency record.
//! - [`workload`]: the workload file format, its one parser and its errors.
//! - [`api_error`]: the `{"error":{"code","message"}}` body every 4xx and 5xx carries, and the
//!   error detail a response hands to the log.
//! - [`http`]: the outer layers every server shares (route spans that log errors, panic guard,
//!   limit errors) and the `/metrics`, 404 and 405 answers.
//! - [`auth`]: the bearer-token policy of the control endpoints.
//! - [`sync`]: the one lock policy.
//! - [`plot`] (feature `plot`): the embedded font, palette and axis helpers of every PNG.
//! - [`oip`]: the Open Inference Protocol (KServe v2 REST) bodies, tensor data, the binary
//!   tensor extension and the label of an answer, spoken to third-party model servers.
//! - [`image_payload`]: the base64 image payload rules (alphabets, `data:` prefix) used by the
//!   dispatcher to validate cheaply and by inference to decode.
//! - [`pacing`]: drift-free pacing against a fixed start time.
//! - [`telemetry`]: `tracing` initialisation (text or JSON logs).
//! - [`shutdown`]: the SIGTERM / Ctrl-C signal future.

pub mod api_error;
pub mod auth;
pub mod http;
pub mod image_payload;
pub mod oip;
pub mod outcome;
pub mod pacing;
#[cfg(feature = "plot")]
pub mod plot;
pub mod shutdown;
pub mod sync;
pub mod telemetry;
pub mod wire;
pub mod workload;

pub use api_error::ApiErrorBody;
pub use shutdown::shutdown_signal;
