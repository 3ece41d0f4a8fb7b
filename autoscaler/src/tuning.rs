//! The tuning file: a YAML document with the reference design's keys (`serviceRatePerPod`,
//! `targetUtilization`, `coldStartSeconds`, ...) plus the controls this implementation adds,
//! validated once into [`Tuning`].
//!
//! Unknown keys are errors (a typo must not silently fall back to a default), every invalid
//! value is reported with the key that holds it, and every error about the file's text (YAML
//! syntax, types, values out of range, bytes that are not UTF-8) carries its line and column.
//! The top-level keys can be overridden by flags and environment variables
//! ([`TuningOverrides`]); precedence is flag/env, then file, then built-in default.
//!
//! Layout: `file` (the document as written and its validation), `hpa` (the `hpa`
//! section), `locate` (where in the text a key is set), `overrides` (the flags).

mod file;
mod hpa;
mod locate;
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

/// The name [`TuningError`] had when the tuning file lived in `config`; kept so that callers
/// need no change.
pub use TuningError as ConfigError;

/// Why the tuning file (or a flag over it) was rejected. Also known by its former name,
/// [`ConfigError`].
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax, unknown keys and type errors; the message carries line and column.
    #[error("{path}: {message}")]
    Yaml { path: String, message: String },
    /// A value out of its range: `key` is the dotted YAML path; `at` is where the file sets
    /// it (`None` for a default, a flag or an environment variable).
    #[error("{key}: {message}{}", .at.as_ref().map_or(String::new(), |at| format!(" ({at})")))]
    Invalid {
        key: String,
        message: String,
        at: Option<Location>,
    },
}

/// A place in a tuning file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.path, self.line, self.column
        )
    }
}

impl TuningError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        TuningError::Invalid {
            key: key.to_owned(),
            message: message.into(),
            at: None,
        }
    }

    /// Adds where `text` (the file `path`) sets the key of an invalid value, unless `replaced`
    /// says a flag or environment variable set it instead.
    fn located(self, text: &str, path: &str, replaced: impl Fn(&str) -> bool) -> Self {
        match self {
            TuningError::Invalid {
                key,
                message,
                at: None,
            } if !replaced(&key) => {
                let at = locate::locate(text, &key).map(|(line, column)| Location {
                    path: path.to_owned(),
                    line,
                    column,
                });
                TuningError::Invalid { key, message, at }
            }
            other => other,
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
    /// With a minimum of 0 replicas: how long the target must be idle before it goes to zero
    /// (`scaleToZeroAfterSeconds`).
    pub scale_to_zero_after: Duration,
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
    pub fn load(path: Option<&Path>, overrides: &TuningOverrides) -> Result<Self, TuningError> {
        let Some(path) = path else {
            let mut file = TuningFile::default();
            overrides.apply(&mut file);
            return file.validate();
        };
        let origin = path.display().to_string();
        let text = read_text(path, &origin)?;
        let mut file = TuningFile::parse(&text, &origin)?;
        overrides.apply(&mut file);
        file.validate()
            .map_err(|err| err.located(&text, &origin, |key| overrides.replaces(key)))
    }

    /// Parses and validates YAML text (`origin` names it in errors).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, TuningError> {
        TuningFile::parse(text, origin)?
            .validate()
            .map_err(|err| err.located(text, origin, |_| false))
    }
}

/// The file as UTF-8 text; bytes that are not are an error at their line and column.
fn read_text(path: &Path, origin: &str) -> Result<String, TuningError> {
    let bytes = std::fs::read(path).map_err(|source| TuningError::Io {
        path: origin.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let (line, column) = locate::line_column(valid, valid.len());
        TuningError::Yaml {
            path: origin.to_owned(),
            message: format!("invalid UTF-8 at line {line} column {column}"),
        }
    })
}

// ------------------------------------------------------------------ range checks

pub(crate) fn positive(key: &str, v: f64) -> Result<f64, TuningError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(TuningError::invalid(
            key,
            format!("must be a number > 0, got {v}"),
        ))
    }
}

pub(crate) fn non_negative(key: &str, v: f64) -> Result<f64, TuningError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(TuningError::invalid(
            key,
            format!("must be a number ≥ 0, got {v}"),
        ))
    }
}

/// In `(0, 1]`.
pub(crate) fn fraction(key: &str, v: f64) -> Result<f64, TuningError> {
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(TuningError::invalid(
            key,
            format!("must be in (0, 1], got {v}"),
        ))
    }
}

pub(crate) fn seconds(key: &str, v: f64) -> Result<Duration, TuningError> {
    let v = non_negative(key, v)?;
    Duration::try_from_secs_f64(v)
        .map_err(|_| TuningError::invalid(key, format!("{v} seconds is too long")))
}

#[cfg(test)]
mod tests;
