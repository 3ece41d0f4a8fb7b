//! The predictive policy: feed the observed arrival rate to the forecaster, size the target for
//! the highest forecast until pods asked for now are ready, plus `z · σ` of the recent forecast
//! errors at that horizon (an upper prediction bound; z for `slaViolationProbability`)
//! ([`crate::decision`]).

use std::time::Duration;

use crate::decision::{Decider, DecisionInput, DecisionReason};
use crate::forecast::{ErrorTracker, Forecaster, upper_quantile};
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
    /// RMS of the forecaster's errors at `horizon`.
    errors: ErrorTracker,
    /// Normal quantile for `slaViolationProbability`: the sizing uses the upper prediction
    /// bound `forecast + z · σ`.
    z: f64,
}

/// How long forecast errors are remembered.
const ERROR_MEMORY: Duration = Duration::from_secs(600);

impl Predictive {
    pub fn new(tuning: &Tuning, interval: Duration) -> Self {
        let step = interval.as_secs_f64().max(1e-3);
        let horizon = ((tuning.decision.cold_start.as_secs_f64() + step) / step).ceil();
        let horizon = horizon.clamp(1.0, 10_000.0) as u32;
        let window = (ERROR_MEMORY.as_secs_f64() / step)
            .ceil()
            .clamp(1.0, 10_000.0) as usize;
        Self {
            forecaster: Forecaster::new(tuning.forecast),
            decider: Decider::new(tuning.decision.clone()),
            horizon,
            use_measured_service_rate: tuning.use_measured_service_rate,
            scale_to_zero: ScaleToZero::new(
                tuning.decision.min_replicas,
                tuning.scale_to_zero_after,
            ),
            errors: ErrorTracker::new(horizon, window),
            z: upper_quantile(tuning.decision.sla_violation_probability).max(0.0),
        }
    }

    pub(super) fn prime(&mut self, now: std::time::Instant, replicas: u32) {
        self.decider.prime(now, replicas);
    }

    /// The forecast horizon in intervals.
    pub fn horizon(&self) -> u32 {
        self.horizon
    }

    /// The largest forecast over steps 1..=horizon: pods asked for now are ready at the
    /// horizon but the current ones serve until then, so a rise is anticipated and a fall
    /// is followed only once the whole cold start is below the current level.
    fn peak_forecast(&self) -> Option<f64> {
        (1..=self.horizon)
            .filter_map(|h| self.forecaster.forecast(h))
            .reduce(f64::max)
    }

    pub fn forecaster(&self) -> &Forecaster {
        &self.forecaster
    }

    pub(super) fn scale_to_zero(&mut self) -> &mut ScaleToZero {
        &mut self.scale_to_zero
    }

    /// What a restart keeps ([`crate::checkpoint`]): the forecaster and its recent errors.
    pub fn learned(&self) -> (&Forecaster, &ErrorTracker) {
        (&self.forecaster, &self.errors)
    }

    /// The same, to restore into.
    pub fn learned_mut(&mut self) -> (&mut Forecaster, &mut ErrorTracker) {
        (&mut self.forecaster, &mut self.errors)
    }

    pub(super) fn decide(&mut self, obs: &Observation, t: &Telemetry) -> Recommendation {
        let Some(rate) = t.arrival_rate else {
            return super::plain(obs.current_replicas, obs.current_replicas, "noTelemetry");
        };
        // A held-over sample was already folded in; folding it again would fake a flat trend.
        let expected = if obs.fresh {
            let expected = self.forecaster.forecast(1);
            self.forecaster.observe(rate);
            self.errors
                .record(rate, self.forecaster.forecast(self.horizon));
            expected
        } else {
            None
        };
        let forecast = self.forecaster.forecast(self.horizon).unwrap_or(rate);
        // Sized for: the highest forecast until new pods are ready, plus z · σ_horizon.
        let sized_for = self.peak_forecast().unwrap_or(rate) + self.z * self.errors.rms();
        let decision = self.decider.decide(&DecisionInput {
            now: obs.now,
            current_replicas: obs.current_replicas,
            observed_rate: rate,
            forecast_rate: sized_for,
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Feeds `rates`, one per 15 s interval, and returns the last recommendation.
    fn run(rates: &[f64]) -> (Predictive, Recommendation) {
        let tuning = Tuning::default();
        let mut policy = Predictive::new(&tuning, Duration::from_secs(15));
        let start = Instant::now();
        let mut last = None;
        for (i, &rate) in rates.iter().enumerate() {
            let now = start + Duration::from_secs(15 * i as u64);
            let t = Telemetry {
                arrival_rate: Some(rate),
                queue_length: Some(0.0),
                ..Telemetry::empty(now)
            };
            let obs = Observation {
                now,
                current_replicas: 6,
                telemetry: Some(t),
                fresh: true,
                scale_down_allowed: true,
            };
            last = Some(policy.decide(&obs, &t));
        }
        (policy, last.expect("at least one rate"))
    }

    #[test]
    fn recent_forecast_errors_buy_headroom() {
        let steady = vec![50.0; 50];
        // Same mean, ±10 for 40 intervals, then 10 steady ones: the model has settled back to
        // 50 but the errors of the last 10 minutes are remembered.
        let mut noisy: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 40.0 } else { 60.0 })
            .collect();
        noisy.extend([50.0; 10]);
        let (calm, at_steady) = run(&steady);
        let (jumpy, at_noisy) = run(&noisy);
        assert_eq!(calm.errors.rms(), 0.0);
        assert!(jumpy.errors.rms() > 3.0, "rms {}", jumpy.errors.rms());
        assert!((at_noisy.forecast_rate.unwrap() - 50.0).abs() < 1.0);
        assert!(
            at_noisy.replicas > at_steady.replicas,
            "noisy {} steady {}",
            at_noisy.replicas,
            at_steady.replicas
        );
    }

    #[test]
    fn sizes_for_the_highest_forecast_before_new_pods_are_ready() {
        let (rising, _) = run(&[10.0, 20.0, 30.0, 40.0]);
        let at_horizon = rising.forecaster.forecast(rising.horizon).unwrap();
        assert_eq!(rising.peak_forecast(), Some(at_horizon));
        let (falling, _) = run(&[40.0, 30.0, 20.0, 10.0]);
        let next = falling.forecaster.forecast(1).unwrap();
        assert!(next > falling.forecaster.forecast(falling.horizon).unwrap());
        assert_eq!(falling.peak_forecast(), Some(next));
    }
}
