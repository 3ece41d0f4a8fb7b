//! The tuning file: a YAML document with the reference design's keys (`serviceRatePerPod`,
//! `targetUtilization`, `coldStartSeconds`, ...) plus the controls this implementation adds,
//! validated once into [`Tuning`].
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), every invalid
//! value is reported with the key that holds it, and YAML syntax errors carry their line and
//! column. The top-level keys can be overridden by flags and environment variables
//! ([`TuningOverrides`]); precedence is flag/env, then file, then built-in default.

mod file;
mod hpa;
mod overrides;

use std::path::Path;
use std::time::Duration;

use crate::breaker::BreakerParams;
use crate::decision::DecisionParams;
use crate::forecast::ForecastParams;
use crate::policy::hpa::Behavior;
use crate::telemetry::PromQueries;

pub use file::TuningFile;
pub use hpa::{BehaviorFile, HpaFile};
pub use overrides::TuningOverrides;

/// Why the tuning file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// YAML syntax, unknown keys and type errors; the message carries line and column.
    #[error("{path}: {message}")]
    Yaml { path: String, message: String },
    /// A value out of its range: `key` is the dotted YAML path.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// Validated tuning: what the policies, the breaker and the telemetry source run on.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    pub decision: DecisionParams,
    pub forecast: ForecastParams,
    /// Use the measured per-pod service rate (when the source has it) instead of
    /// `serviceRatePerPod`.
    pub use_measured_service_rate: bool,
    /// The breaker's thresholds (the controller fills in the fields its policy requires).
    pub breaker: BreakerParams,
    pub hpa_tolerance: f64,
    pub hpa_behavior: Behavior,
    /// `queue` policy: backlog one replica should carry.
    pub queue_target_per_replica: f64,
    pub queries: PromQueries,
    pub prometheus_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        // The built-in defaults are a valid file; a test keeps it that way.
        TuningFile::default()
            .validate()
            .expect("built-in defaults are valid")
    }
}

impl Tuning {
    /// Reads and validates a tuning file, with `overrides` applied on top.
    pub fn load(path: Option<&Path>, overrides: &TuningOverrides) -> Result<Self, ConfigError> {
        let mut file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                TuningFile::parse(&text, &path.display().to_string())?
            }
            None => TuningFile::default(),
        };
        overrides.apply(&mut file);
        file.validate()
    }

    /// Parses and validates YAML text (`origin` names it in errors).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        TuningFile::parse(text, origin)?.validate()
    }
}

// ------------------------------------------------------------------ range checks

pub(crate) fn positive(key: &str, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be a number > 0, got {v}"),
        ))
    }
}

pub(crate) fn non_negative(key: &str, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be a number ≥ 0, got {v}"),
        ))
    }
}

/// In `(0, 1]`.
pub(crate) fn fraction(key: &str, v: f64) -> Result<f64, ConfigError> {
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be in (0, 1], got {v}"),
        ))
    }
}

pub(crate) fn seconds(key: &str, v: f64) -> Result<Duration, ConfigError> {
    let v = non_negative(key, v)?;
    Duration::try_from_secs_f64(v)
        .map_err(|_| ConfigError::invalid(key, format!("{v} seconds is too long")))
}

#[cfg(test)]
mod tests;
