//! What every service of the inference load-testing harness shares, and nothing more.
//!
//! The services (`inference`, `dispatcher`, `load-tester`, `autoscaler`) talk to each other over
//! HTTP with camelCase JSON. The types of that contract live here so that a change to the wire
//! format is one change, seen by every side at compile time.
//!
//! # Layout
//! - [`wire`]: request and response bodies of the HTTP contract (`/infer`, `/enqueue`,
//!   `/storeLatency`, `/stats`).
//! - [`api_error`]: the `{"error":{"code","message"}}` body every 4xx and 5xx carries.
//! - [`http`]: the outer layers every server shares (route spans, panic guard, limit errors).
//! - [`image_payload`]: the base64 image payload rules (alphabets, `data:` prefix) used by the
//!   dispatcher to validate cheaply and by inference to decode.
//! - [`pacing`]: drift-free pacing against a fixed start time.
//! - [`telemetry`]: `tracing` initialisation (text or JSON logs).
//! - [`shutdown`]: the SIGTERM / Ctrl-C signal future.

pub mod api_error;
pub mod http;
pub mod image_payload;
pub mod pacing;
pub mod shutdown;
pub mod telemetry;
pub mod wire;

pub use api_error::ApiErrorBody;
pub use shutdown::shutdown_signal;
