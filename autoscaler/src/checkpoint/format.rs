//! The saved document: a format version, when it was taken, what it was learned for, and the
//! forecaster's state; and the decision, at start, of what to do with one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::forecast::{ForecastParams, Forecaster, ForecasterState, ModelKind};

/// The format this build writes and reads. A document of another version is refused (and
/// the forecaster starts fresh) rather than guessed at.
pub const FORMAT_VERSION: u32 = 1;

/// Most intervals bridged with the model's own forecasts; a longer gap counts as stale
/// whatever `--state-max-age` says (a guard against an interval of milliseconds).
const MAX_BRIDGED_STEPS: u64 = 1_000_000;

/// One saved forecaster state (JSON, camelCase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    /// When it was saved, Unix epoch ms.
    pub taken_at_unix_ms: u64,
    /// When the last observation in it was folded in, Unix epoch ms: the gap at a restart is
    /// counted from here.
    pub last_observation_unix_ms: u64,
    pub learned_for: LearnedFor,
    pub forecaster: ForecasterState,
    /// The predictive policy's recent forecast errors at its horizon (magnitudes, requests/s,
    /// oldest first): the σ of its upper prediction bound. Absent (none) in documents written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_errors: Vec<f64>,
}

/// What a state was learned for: a state is restored only for the same target, interval and
/// season length (its level is per interval, its offsets per step of the season).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LearnedFor {
    /// The target as the logs name it (`deployment ml/inference`).
    pub target: String,
    pub interval_ms: u64,
    /// Intervals per season; 0 for Holt (no season).
    pub season_length: usize,
}

impl LearnedFor {
    pub fn new(target: String, interval: Duration, params: &ForecastParams) -> Self {
        Self {
            target,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            season_length: match params.kind {
                ModelKind::Holt => 0,
                ModelKind::HoltWinters { period } => period,
            },
        }
    }

    /// What differs from `other`, in words; `None` if nothing.
    fn difference(&self, other: &LearnedFor) -> Option<String> {
        if self.target != other.target {
            Some(format!("target {:?}, not {:?}", other.target, self.target))
        } else if self.interval_ms != other.interval_ms {
            Some(format!(
                "an interval of {} ms, not {} ms",
                other.interval_ms, self.interval_ms
            ))
        } else if self.season_length != other.season_length {
            Some(format!(
                "a season of {} intervals, not {}",
                other.season_length, self.season_length
            ))
        } else {
            None
        }
    }
}

/// Why a saved document cannot be read at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unreadable {
    /// Not JSON, or not this shape; the message carries line and column.
    #[error("not a forecaster state: {0}")]
    Malformed(String),
    #[error("format version {found}, this build reads {FORMAT_VERSION}")]
    UnknownVersion { found: u64 },
}

/// What to do with a saved state at start.
#[derive(Debug, Clone)]
pub enum Resumption {
    /// Level, trend and season continue; `bridged` intervals without observations were
    /// filled with the model's own one-step forecasts.
    Resumed {
        forecaster: Forecaster,
        /// The saved recent errors less the `bridged` oldest: the error memory slides over
        /// the gap as it would have had the policy run.
        recent_errors: Vec<f64>,
        bridged: u64,
    },
    /// Older than the maximum age: the seasonal offsets are kept, in phase, and the level is
    /// learned again from the next observation.
    SeasonOnly { forecaster: Forecaster },
    /// Older than the maximum age, with no season to keep: start fresh.
    Stale,
    /// Learned for another target or other settings (the words say which): start fresh.
    Mismatch(String),
    /// Readable but inconsistent (a value that is not finite, ...): start fresh.
    Invalid(String),
}

impl Checkpoint {
    /// The state of `forecaster` learned for `learned_for`, last observed at `observed_at`,
    /// saved at `now`.
    pub fn take(
        forecaster: &Forecaster,
        learned_for: LearnedFor,
        observed_at: SystemTime,
        now: SystemTime,
    ) -> Self {
        Self {
            version: FORMAT_VERSION,
            taken_at_unix_ms: unix_ms(now),
            last_observation_unix_ms: unix_ms(observed_at),
            learned_for,
            forecaster: forecaster.state(),
            recent_errors: Vec::new(),
        }
    }

    /// With the predictive policy's recent forecast errors (magnitudes, oldest first).
    pub fn with_recent_errors(mut self, errors: Vec<f64>) -> Self {
        self.recent_errors = errors;
        self
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of numbers and strings: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a saved document, checking its version before its shape.
    pub fn parse(bytes: &[u8]) -> Result<Self, Unreadable> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Unreadable::Malformed(e.to_string()))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(found) => return Err(Unreadable::UnknownVersion { found }),
            None => return Err(Unreadable::Malformed("no numeric `version`".into())),
        }
        // Parsed again from the bytes (not the Value) so that errors keep line and column.
        serde_json::from_slice(bytes).map_err(|e| Unreadable::Malformed(e.to_string()))
    }

    /// Time from the last observation in it to `now` (0 if that is in the future).
    pub fn age(&self, now: SystemTime) -> Duration {
        Duration::from_millis(unix_ms(now).saturating_sub(self.last_observation_unix_ms))
    }

    /// Decides how to continue from this state at `now` for `expected`, with `params`:
    /// within `max_age` everything continues, the missed intervals bridged; beyond it only the
    /// seasonal offsets are worth keeping (level and trend are out of date, a daily pattern
    /// is not).
    pub fn resume(
        self,
        expected: &LearnedFor,
        params: ForecastParams,
        now: SystemTime,
        max_age: Duration,
    ) -> Resumption {
        if let Some(why) = expected.difference(&self.learned_for) {
            return Resumption::Mismatch(why);
        }
        let age = self.age(now);
        if let Some(bad) = self
            .recent_errors
            .iter()
            .find(|e| !e.is_finite() || **e < 0.0)
        {
            return Resumption::Invalid(format!("a recent forecast error of {bad}"));
        }
        let mut forecaster = match Forecaster::from_state(params, self.forecaster) {
            Ok(f) => f,
            Err(why) => return Resumption::Invalid(why),
        };
        let interval_ms = expected.interval_ms.max(1);
        // Observations were due every interval after the last one, up to the one about to
        // be made now: the ones in between were missed.
        let missed =
            (u64::try_from(age.as_millis()).unwrap_or(u64::MAX) + interval_ms / 2) / interval_ms;
        let missed = missed.saturating_sub(1);
        if age <= max_age && missed <= MAX_BRIDGED_STEPS {
            forecaster.skip(missed);
            let mut recent_errors = self.recent_errors;
            let forgotten =
                usize::try_from(missed).map_or(recent_errors.len(), |m| m.min(recent_errors.len()));
            recent_errors.drain(..forgotten);
            Resumption::Resumed {
                forecaster,
                recent_errors,
                bridged: missed,
            }
        } else if forecaster.is_seasonal() {
            forecaster.keep_season_only(missed);
            Resumption::SeasonOnly { forecaster }
        } else {
            Resumption::Stale
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
