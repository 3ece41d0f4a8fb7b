//! Tests of the inference service against the real model and real photos: one binary, so the
//! model is loaded once.

// Helpers outside #[test] functions unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod classify;
mod metrics;
mod metrics_text;
mod overload;
mod runtimes;
mod server;
mod support;
mod tritonclient;
mod v2;
