//! Scale to zero and back: the step between 0 and 1 replica, for the policies that allow a
//! minimum of 0 (`predictive`, and `queue` as KEDA does it).
//!
//! With no replica, nothing serves: the dispatcher keeps queueing, and the policy must wake the
//! target as soon as any work shows (**activation**: a queued or in-flight request, or any
//! arrival). Going back to zero costs the next request a cold start, so it happens only after
//! the target has been **idle** (no arrival, empty queue, nothing in flight) for
//! `scaleToZeroAfterSeconds`; until then at least one replica stays. Between 1 and the maximum
//! the policy sizes as usual: this gate only decides zero or not.
//!
//! KEDA works the same way: its operator scales 0 → 1 when a trigger is active (the query
//! above `activationThreshold`) and 1 → 0 after `cooldownPeriod` without activity, and leaves
//! 1..N to the HPA it creates.

use std::time::{Duration, Instant};

use super::{Observation, Recommendation, plain};
use crate::telemetry::Telemetry;

/// Reason of an activation: work waits and there is no replica.
pub const ACTIVATION: &str = "activation";
/// Reason of holding at zero: no replica and no work.
pub const IDLE: &str = "idle";
/// Reason of keeping one replica that the policy would remove: not idle for long enough yet.
pub const IDLE_WINDOW: &str = "idleWindow";
/// Reason of the scale to zero after the idle period.
pub const SCALE_TO_ZERO: &str = "scaleToZero";

/// The 0 ↔ 1 gate and the start of the current idle period.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleToZero {
    /// False when the minimum is at least 1: the gate changes nothing.
    enabled: bool,
    after: Duration,
    idle_since: Option<Instant>,
}

impl ScaleToZero {
    /// A gate for a policy whose minimum is `min_replicas`; it acts only when that is 0.
    pub fn new(min_replicas: u32, after: Duration) -> Self {
        Self {
            enabled: min_replicas == 0,
            after,
            idle_since: None,
        }
    }

    /// Whether the policy may go to zero replicas.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The policy's recommendation `rec`, corrected for the step between 0 and 1 replica.
    /// Without telemetry the recommendation is left alone (the policy holds).
    pub fn apply(&mut self, obs: &Observation, rec: Recommendation) -> Recommendation {
        if !self.enabled {
            return rec;
        }
        let Some(t) = obs.telemetry.as_ref() else {
            return rec;
        };
        let current = obs.current_replicas;
        if has_work(t) {
            self.idle_since = None;
            return match current {
                0 => with(rec, current, rec.replicas.max(1), ACTIVATION),
                _ if rec.replicas == 0 => with(rec, current, 1, IDLE_WINDOW),
                _ => rec,
            };
        }
        let since = *self.idle_since.get_or_insert(obs.now);
        let idle_for = obs.now.saturating_duration_since(since);
        match current {
            // Nothing to serve: stay at zero whatever a forecast's tail says.
            0 => with(rec, current, 0, IDLE),
            _ if idle_for >= self.after => with(rec, current, 0, SCALE_TO_ZERO),
            _ if rec.replicas == 0 => with(rec, current, 1, IDLE_WINDOW),
            _ => rec,
        }
    }
}

/// Any request queued, in flight or arriving. A signal the source does not have counts as
/// no work; the breaker holds the policy when a required one is missing.
fn has_work(t: &Telemetry) -> bool {
    [t.queue_length, t.in_flight, t.arrival_rate]
        .into_iter()
        .flatten()
        .any(|v| v > 0.0)
}

/// `rec` moved to `replicas` for `reason` (the forecast and panic flag kept).
fn with(rec: Recommendation, current: u32, replicas: u32, reason: &'static str) -> Recommendation {
    Recommendation {
        forecast_rate: rec.forecast_rate,
        panic: rec.panic,
        ..plain(current, replicas, reason)
    }
}

#[cfg(test)]
mod tests;
