//! The controller's side of [`crate::checkpoint`]: restore the forecaster and its recent errors
//! before the first step, save after the steps that are due and at shutdown, count the
//! outcomes.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::Controller;
use crate::checkpoint::{RestoreOutcome, SaveOutcome};
use crate::target::ScaleTarget;
use crate::telemetry::TelemetrySource;

impl<S: TelemetrySource, T: ScaleTarget> Controller<S, T> {
    /// Restores the forecaster's saved state as of `now` (wall clock), if there is a store
    /// and the policy forecasts: once, before the first step. `None`: nothing to restore.
    pub async fn restore_state(&mut self, now: SystemTime) -> Option<RestoreOutcome> {
        let (forecaster, errors) = self.policy.learned_mut()?;
        let outcome = self
            .checkpointer
            .as_mut()?
            .restore(forecaster, errors, now)
            .await;
        let m = self.handle.metrics();
        m.state_restores
            .with_label_values(&[outcome.as_str()])
            .inc();
        Some(outcome)
    }

    /// Saves the forecaster's state if a save is due at `now` (`force`: at once, as at
    /// shutdown) and it learned something since the last save. `None`: nothing saved.
    pub async fn save_state(&mut self, now: Instant, force: bool) -> Option<SaveOutcome> {
        let (forecaster, errors) = self.policy.learned()?;
        let checkpointer = self.checkpointer.as_mut()?;
        let outcome = if force {
            checkpointer.save(forecaster, errors).await
        } else {
            checkpointer.after_step(now, forecaster, errors).await
        }?;
        let m = self.handle.metrics();
        m.state_saves.with_label_values(&[outcome.as_str()]).inc();
        if outcome == SaveOutcome::Ok {
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            m.state_last_save.set(at.as_secs_f64());
        }
        Some(outcome)
    }
}
