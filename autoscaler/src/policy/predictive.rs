//! The predictive policy: feed the observed arrival rate to the forecaster, size the target for
//! the forecast at the cold-start horizon ([`crate::decision`]).

use std::time::Duration;

use crate::decision::{Decider, DecisionInput, DecisionReason};
use crate::forecast::Forecaster;
use crate::policy::{Observation, Recommendation, ScaleToZero};
use crate::telemetry::Telemetry;
use crate::tuning::Tuning;

/// Forecaster + decision rule.
#[derive(Debug, Clone)]
pub struct Predictive {
    forecaster: Forecaster,
    decider: Decider,
    /// Steps ahead to forecast: pods asked for now serve from `now + coldStart` until the pods
    /// of the next decision are ready, one interval later.
    horizon: u32,
    use_measured_service_rate: bool,
    scale_to_zero: ScaleToZero,
}

impl Predictive {
    pub fn new(tuning: &Tuning, interval: Duration) -> Self {
        let step = interval.as_secs_f64().max(1e-3);
        let horizon = ((tuning.decision.cold_start.as_secs_f64() + step) / step).ceil();
        Self {
            forecaster: Forecaster::new(tuning.forecast),
            decider: Decider::new(tuning.decision.clone()),
            horizon: horizon.clamp(1.0, 10_000.0) as u32,
            use_measured_service_rate: tuning.use_measured_service_rate,
            scale_to_zero: ScaleToZero::new(
                tuning.decision.min_replicas,
                tuning.scale_to_zero_after,
            ),
        }
    }

    pub(super) fn prime(&mut self, now: std::time::Instant, replicas: u32) {
        self.decider.prime(now, replicas);
    }

    /// The forecast horizon in intervals.
    pub fn horizon(&self) -> u32 {
        self.horizon
    }

    pub fn forecaster(&self) -> &Forecaster {
        &self.forecaster
    }

    pub(super) fn scale_to_zero(&mut self) -> &mut ScaleToZero {
        &mut self.scale_to_zero
    }

    /// For restoring a saved state ([`crate::checkpoint`]).
    pub fn forecaster_mut(&mut self) -> &mut Forecaster {
        &mut self.forecaster
    }

    pub(super) fn decide(&mut self, obs: &Observation, t: &Telemetry) -> Recommendation {
        let Some(rate) = t.arrival_rate else {
            return super::plain(obs.current_replicas, obs.current_replicas, "noTelemetry");
        };
        // A held-over sample was already folded in; folding it again would fake a flat trend.
        let expected = if obs.fresh {
            let expected = self.forecaster.forecast(1);
            self.forecaster.observe(rate);
            expected
        } else {
            None
        };
        let forecast = self.forecaster.forecast(self.horizon).unwrap_or(rate);
        let decision = self.decider.decide(&DecisionInput {
            now: obs.now,
            current_replicas: obs.current_replicas,
            observed_rate: rate,
            forecast_rate: forecast,
            expected_rate: expected,
            queue_length: t.queue_length.unwrap_or(0.0),
            service_rate_per_pod: t
                .service_rate_per_pod
                .filter(|_| self.use_measured_service_rate),
            scale_down_allowed: obs.scale_down_allowed,
        });
        Recommendation {
            replicas: decision.desired,
            direction: decision.direction,
            reason: reason_str(decision.reason),
            forecast_rate: Some(forecast),
            sla_violation_probability: Some(decision.sla_violation_probability),
            panic: decision.panic,
        }
    }
}

fn reason_str(reason: DecisionReason) -> &'static str {
    match reason {
        DecisionReason::Sized => "sized",
        DecisionReason::Cooldown => "cooldown",
        DecisionReason::BreakerOpen => "breakerOpen",
        DecisionReason::Panic => "panic",
        DecisionReason::StepLimited => "stepLimited",
        DecisionReason::Tolerance => "tolerance",
        DecisionReason::Bounds => "bounds",
    }
}
