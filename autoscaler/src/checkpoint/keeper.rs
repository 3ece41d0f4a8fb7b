//! When the state is saved and restored, and what is logged and counted: the part of
//! checkpointing the controller drives (it counts the outcomes).

use std::time::{Duration, Instant, SystemTime};

use super::{Checkpoint, CheckpointError, Checkpointing, LearnedFor, Resumption, Saved};
use crate::forecast::{ErrorTracker, Forecaster};

/// Longest a store may take to answer; a save must also fit in a pod's termination grace
/// period.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a restore at start went: the `outcome` label of `autoscaler_state_restores_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// Everything continues (the gap bridged).
    Restored,
    /// Too old: the seasonal offsets continue, level and trend are learned again.
    SeasonOnly,
    /// Nothing saved yet.
    Missing,
    /// Too old, and no season to keep.
    Stale,
    /// Learned for another target, interval or season length.
    Mismatch,
    /// Not a state this build reads (not JSON, another version, inconsistent values).
    Corrupt,
    /// The store could not be read (API error, I/O error, timeout).
    Unavailable,
}

impl RestoreOutcome {
    pub const ALL: [RestoreOutcome; 7] = [
        RestoreOutcome::Restored,
        RestoreOutcome::SeasonOnly,
        RestoreOutcome::Missing,
        RestoreOutcome::Stale,
        RestoreOutcome::Mismatch,
        RestoreOutcome::Corrupt,
        RestoreOutcome::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestoreOutcome::Restored => "restored",
            RestoreOutcome::SeasonOnly => "season_only",
            RestoreOutcome::Missing => "missing",
            RestoreOutcome::Stale => "stale",
            RestoreOutcome::Mismatch => "mismatch",
            RestoreOutcome::Corrupt => "corrupt",
            RestoreOutcome::Unavailable => "unavailable",
        }
    }
}

/// How a save went: the `outcome` label of `autoscaler_state_saves_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Written (possibly after a conflict and a re-read).
    Ok,
    /// After a conflict, a newer state for the same target was found and left in place.
    KeptNewer,
    /// Still conflicting after a re-read: tried again at the next save.
    Conflict,
    /// Not written: I/O or API error, too large, timeout.
    Error,
}

impl SaveOutcome {
    pub const ALL: [SaveOutcome; 4] = [
        SaveOutcome::Ok,
        SaveOutcome::KeptNewer,
        SaveOutcome::Conflict,
        SaveOutcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SaveOutcome::Ok => "ok",
            SaveOutcome::KeptNewer => "kept_newer",
            SaveOutcome::Conflict => "conflict",
            SaveOutcome::Error => "error",
        }
    }
}

/// Restores the forecaster at start, saves it every interval when it has learned something,
/// and once more when asked (at shutdown).
#[derive(Debug)]
pub struct Checkpointer {
    settings: Checkpointing,
    learned_for: LearnedFor,
    /// Forecaster steps at the last save or restore: nothing to save while unchanged.
    saved_steps: Option<u64>,
    /// Forecaster steps at the last look, and the wall-clock time they last changed.
    seen_steps: u64,
    observed_at: SystemTime,
    next_save: Option<Instant>,
}

impl Checkpointer {
    pub fn new(settings: Checkpointing, learned_for: LearnedFor) -> Self {
        Self {
            settings,
            learned_for,
            saved_steps: None,
            seen_steps: 0,
            observed_at: SystemTime::now(),
            next_save: None,
        }
    }

    pub fn settings(&self) -> &Checkpointing {
        &self.settings
    }

    /// Reads the saved state and, if it may be continued at `now`, puts it into `forecaster`
    /// and `errors`. Never fails: whatever goes wrong is logged and counted, and the
    /// forecaster starts fresh (a state that cannot be read is replaced at the next save).
    pub async fn restore(
        &mut self,
        forecaster: &mut Forecaster,
        errors: &mut ErrorTracker,
        now: SystemTime,
    ) -> RestoreOutcome {
        let store = self.settings.store.describe();
        let loaded = tokio::time::timeout(STORE_TIMEOUT, self.settings.store.load())
            .await
            .unwrap_or_else(|_| Err(self.timeout()));
        let outcome = match loaded {
            Err(err) => {
                tracing::warn!(%store, %err, "cannot read the saved forecaster state: starting fresh");
                RestoreOutcome::Unavailable
            }
            Ok(None) => {
                tracing::info!(%store, "no saved forecaster state: starting fresh");
                RestoreOutcome::Missing
            }
            Ok(Some(bytes)) => match Checkpoint::parse(&bytes) {
                Err(err) => {
                    tracing::warn!(%store, %err,
                        "saved forecaster state unreadable: starting fresh (replaced at the next save)");
                    RestoreOutcome::Corrupt
                }
                Ok(checkpoint) => self.resume(checkpoint, forecaster, errors, now, &store),
            },
        };
        self.seen_steps = forecaster.steps();
        self.saved_steps = Some(forecaster.steps());
        outcome
    }

    fn resume(
        &self,
        checkpoint: Checkpoint,
        forecaster: &mut Forecaster,
        errors: &mut ErrorTracker,
        now: SystemTime,
        store: &str,
    ) -> RestoreOutcome {
        let age = checkpoint.age(now);
        let max_age = self.settings.max_age;
        match checkpoint.resume(&self.learned_for, *forecaster.params(), now, max_age) {
            Resumption::Resumed {
                forecaster: restored,
                recent_errors,
                bridged,
            } => {
                let (level, trend) = restored.level_and_trend();
                *forecaster = restored;
                errors.restore(&recent_errors);
                tracing::info!(%store, ?age, bridged, steps = forecaster.steps(), level, trend,
                    seasonal = forecaster.is_seasonal(), recent_errors = recent_errors.len(),
                    error_rms = errors.rms(), "restored the forecaster's state");
                RestoreOutcome::Restored
            }
            Resumption::SeasonOnly {
                forecaster: restored,
            } => {
                tracing::info!(%store, ?age, ?max_age,
                    "saved forecaster state is old: kept its seasonal offsets, relearning level and trend");
                *forecaster = restored;
                RestoreOutcome::SeasonOnly
            }
            Resumption::Stale => {
                tracing::info!(%store, ?age, ?max_age,
                    "saved forecaster state is old and has no season: starting fresh");
                RestoreOutcome::Stale
            }
            Resumption::Mismatch(why) => {
                tracing::warn!(%store, %why,
                    "saved forecaster state was learned for something else: starting fresh");
                RestoreOutcome::Mismatch
            }
            Resumption::Invalid(why) => {
                tracing::warn!(%store, %why,
                    "saved forecaster state is inconsistent: starting fresh (replaced at the next save)");
                RestoreOutcome::Corrupt
            }
        }
    }

    /// Call after every step: saves when the save interval has passed since the last save (or
    /// the first step) and the forecaster learned something since. `None`: nothing was due.
    pub async fn after_step(
        &mut self,
        now: Instant,
        forecaster: &Forecaster,
        errors: &ErrorTracker,
    ) -> Option<SaveOutcome> {
        self.note(forecaster);
        let interval = self.settings.save_interval;
        let due = *self.next_save.get_or_insert(now + interval);
        if now < due {
            return None;
        }
        self.next_save = Some(now + interval);
        self.save(forecaster, errors).await
    }

    /// Saves now if the forecaster learned something since the last save (at shutdown).
    /// `None`: nothing new to save.
    pub async fn save(
        &mut self,
        forecaster: &Forecaster,
        errors: &ErrorTracker,
    ) -> Option<SaveOutcome> {
        self.note(forecaster);
        let steps = forecaster.steps();
        if self.saved_steps == Some(steps) || steps == 0 {
            return None;
        }
        let checkpoint = Checkpoint::take(
            forecaster,
            self.learned_for.clone(),
            self.observed_at,
            SystemTime::now(),
        )
        .with_recent_errors(errors.recent());
        let store = self.settings.store.describe();
        let result = tokio::time::timeout(STORE_TIMEOUT, self.settings.store.save(&checkpoint))
            .await
            .unwrap_or_else(|_| Err(self.timeout()));
        let outcome = match result {
            Ok(Saved::Written) => {
                tracing::debug!(%store, steps, "saved the forecaster's state");
                SaveOutcome::Ok
            }
            Ok(Saved::WrittenAfterConflict) => {
                tracing::warn!(%store, steps,
                    "forecaster state changed by someone else since the last read: overwritten \
                     after reading it again (is another autoscaler writing there?)");
                SaveOutcome::Ok
            }
            Ok(Saved::KeptNewer {
                last_observation_unix_ms,
            }) => {
                tracing::warn!(%store, theirs = last_observation_unix_ms,
                    ours = checkpoint.last_observation_unix_ms,
                    "someone else saved newer forecaster state for this target: left in place \
                     (is another autoscaler writing there?)");
                SaveOutcome::KeptNewer
            }
            Err(err @ CheckpointError::Conflict { .. }) => {
                tracing::warn!(%err, "forecaster state not saved");
                SaveOutcome::Conflict
            }
            Err(err) => {
                tracing::warn!(%err, "forecaster state not saved; retrying at the next save");
                SaveOutcome::Error
            }
        };
        if outcome == SaveOutcome::Ok {
            self.saved_steps = Some(steps);
        }
        Some(outcome)
    }

    /// Remembers when the forecaster last learned something: the saved state says so.
    fn note(&mut self, forecaster: &Forecaster) {
        if forecaster.steps() != self.seen_steps {
            self.seen_steps = forecaster.steps();
            self.observed_at = SystemTime::now();
        }
    }

    fn timeout(&self) -> CheckpointError {
        CheckpointError::Timeout {
            store: self.settings.store.describe(),
            timeout: STORE_TIMEOUT,
        }
    }
}
