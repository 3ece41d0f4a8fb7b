//! Logging: `tracing` with an `EnvFilter` (`RUST_LOG`, default `info`), human-readable text, or
//! one JSON object per line when `LOG_FORMAT=json` (what Loki and `kubectl logs | jq` want).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// From `LOG_FORMAT` (`json` or anything else for text).
    pub fn from_env() -> Self {
        match std::env::var("LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Installs the global subscriber. Safe to call more than once (tests, the in-process demo):
/// later calls are no-ops.
pub fn init() {
    init_with(LogFormat::from_env());
}

pub fn init_with(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Text => registry.with(fmt::layer().with_target(true)).try_init(),
    };
    // Err only means a subscriber is already installed.
    let _ = result;
}
