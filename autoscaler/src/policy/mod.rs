//! Scaling policies, shared by the runtime controller and the simulator.
//!
//! A [`Policy`] turns one [`Observation`] into a [`Recommendation`]; the caller acts on it and
//! reports back with [`Policy::on_scaled`]. Four policies exist:
//! - `predictive`: Holt forecast + Erlang-C sizing ([`predictive`], [`crate::decision`]);
//! - `hpa`: the Kubernetes HPA on pod utilisation ([`hpa`]);
//! - `queue`: KEDA-style, `ceil(backlog / targetPerReplica)` through the same HPA machinery
//!   (KEDA drives an HPA with an `AverageValue` external metric);
//! - `static:N`: always N replicas.
//!
//! `predictive` and `queue` may go down to zero replicas when the minimum is 0; the step
//! between 0 and 1 is [`scale_to_zero`]'s (activation on work, zero after an idle period).
//! `hpa` never goes below 1, as the Kubernetes HPA without its `HPAScaleToZero` feature gate.

pub mod hpa;
pub mod predictive;
pub mod scale_to_zero;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::decision::Direction;
use crate::forecast::{ErrorTracker, Forecaster};
use crate::queueing::Load;
use crate::telemetry::{Signal, Telemetry};
use crate::tuning::Tuning;

pub use hpa::{Hpa, HpaMetric, HpaParams, MetricSample};
pub use predictive::Predictive;
pub use scale_to_zero::ScaleToZero;

/// A policy named on the command line: `predictive`, `hpa`, `queue` or `static:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicySpec {
    Predictive,
    Hpa,
    Queue,
    Static(u32),
}

impl FromStr for PolicySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "predictive" => Ok(PolicySpec::Predictive),
            "hpa" => Ok(PolicySpec::Hpa),
            "queue" => Ok(PolicySpec::Queue),
            other => match other.strip_prefix("static:") {
                Some(n) => n
                    .parse()
                    .map(PolicySpec::Static)
                    .map_err(|_| format!("static:N needs a replica count, got {other:?}")),
                None => Err(format!(
                    "unknown policy {other:?}: expected predictive, hpa, queue or static:N"
                )),
            },
        }
    }
}

impl PolicySpec {
    /// The lowest minimum this policy accepts: 1 for `hpa` (the Kubernetes HPA cannot scale
    /// to zero without a feature gate), 0 for the others.
    pub fn lowest_min_replicas(self) -> u32 {
        match self {
            PolicySpec::Hpa => 1,
            PolicySpec::Predictive | PolicySpec::Queue | PolicySpec::Static(_) => 0,
        }
    }
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySpec::Predictive => f.write_str("predictive"),
            PolicySpec::Hpa => f.write_str("hpa"),
            PolicySpec::Queue => f.write_str("queue"),
            PolicySpec::Static(n) => write!(f, "static:{n}"),
        }
    }
}

/// What a policy sees at one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub now: Instant,
    /// The target's replica count (desired, including pods still starting).
    pub current_replicas: u32,
    /// The telemetry to decide on (`None`: nothing usable, hold).
    pub telemetry: Option<Telemetry>,
    /// Whether `telemetry` was measured this interval (not held over by the breaker).
    pub fresh: bool,
    /// False while the telemetry breaker is open.
    pub scale_down_allowed: bool,
}

/// A policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub replicas: u32,
    pub direction: Direction,
    /// Why, as a stable camelCase word (`sized`, `cooldown`, `ScaleUpLimit`, ...).
    pub reason: &'static str,
    /// The arrival rate the decision was sized for (predictive only).
    pub forecast_rate: Option<f64>,
    /// P(wait > SLA) at `replicas` for the observed arrival rate, when it is known.
    pub sla_violation_probability: Option<f64>,
    pub panic: bool,
}

/// A scaling policy with its state.
#[derive(Debug, Clone)]
pub enum Policy {
    Predictive(Box<Predictive>),
    Hpa(Hpa),
    /// KEDA: an HPA on the backlog for 1..N, and its own 0 ↔ 1 step.
    Queue(Hpa, ScaleToZero),
    Static(u32),
}

impl Policy {
    /// Builds the policy `spec` from the tuning, deciding every `interval`.
    pub fn new(spec: PolicySpec, tuning: &Tuning, interval: Duration) -> Self {
        let hpa = |metric| {
            Hpa::new(HpaParams {
                // Zero is the scale-to-zero gate's business, never the HPA's.
                min_replicas: tuning.decision.min_replicas.max(1),
                max_replicas: tuning.decision.max_replicas,
                tolerance: tuning.hpa_tolerance,
                behavior: tuning.hpa_behavior.clone(),
                metric,
            })
        };
        match spec {
            PolicySpec::Predictive => {
                Policy::Predictive(Box::new(Predictive::new(tuning, interval)))
            }
            PolicySpec::Hpa => Policy::Hpa(hpa(HpaMetric::Utilization {
                target: tuning.decision.target_utilization,
            })),
            PolicySpec::Queue => Policy::Queue(
                hpa(HpaMetric::AverageValue {
                    target: tuning.queue_target_per_replica,
                }),
                ScaleToZero::new(tuning.decision.min_replicas, tuning.scale_to_zero_after),
            ),
            PolicySpec::Static(n) => Policy::Static(n),
        }
    }

    pub fn spec(&self) -> PolicySpec {
        match self {
            Policy::Predictive(_) => PolicySpec::Predictive,
            Policy::Hpa(_) => PolicySpec::Hpa,
            Policy::Queue(..) => PolicySpec::Queue,
            Policy::Static(n) => PolicySpec::Static(*n),
        }
    }

    /// Telemetry fields without which this policy cannot decide (the breaker trips on them).
    pub fn required_signals(&self) -> Vec<Signal> {
        match self {
            Policy::Predictive(_) => vec![Signal::ArrivalRate],
            Policy::Hpa(_) => vec![Signal::Utilisation],
            Policy::Queue(..) => vec![Signal::QueueLength],
            Policy::Static(_) => Vec::new(),
        }
    }

    /// Decides, for the observation, how many replicas the target should have.
    pub fn decide(&mut self, obs: &Observation, tuning: &Tuning) -> Recommendation {
        let current = obs.current_replicas;
        let mut rec = match (&mut *self, obs.telemetry.as_ref()) {
            (Policy::Static(n), _) => plain(current, *n, "static"),
            (_, None) => plain(current, current, "noTelemetry"),
            (Policy::Predictive(p), Some(t)) => p.decide(obs, t),
            (Policy::Hpa(hpa), Some(t)) => {
                let sample = t.utilisation.map(|u| {
                    let ready = t.ready_replicas.map_or(current, |r| r.round() as u32);
                    MetricSample {
                        value: u,
                        ready,
                        unready: current.saturating_sub(ready),
                    }
                });
                let d = hpa.decide(obs.now, current, sample);
                plain(current, d.desired, d.reason)
            }
            (Policy::Queue(hpa, _), Some(t)) => {
                let sample = t.queue_length.map(|q| MetricSample {
                    // Like KEDA's message-queue scalers: waiting plus being processed.
                    value: q + t.in_flight.unwrap_or(0.0),
                    ready: current,
                    unready: 0,
                });
                let d = hpa.decide(obs.now, current, sample);
                plain(current, d.desired, d.reason)
            }
        };
        if let Some(gate) = self.scale_to_zero() {
            rec = gate.apply(obs, rec);
        }
        // Every policy honours the breaker: no scale-down on bad telemetry.
        if rec.replicas < current && !obs.scale_down_allowed {
            rec = plain(current, current, "breakerOpen");
        }
        if rec.sla_violation_probability.is_none()
            && let Some(rate) = obs.telemetry.and_then(|t| t.arrival_rate)
        {
            let mu = tuning.decision.service_rate_per_pod;
            rec.sla_violation_probability = Some(
                Load::new(rate, mu)
                    .wait_probability(rec.replicas, tuning.decision.sla_latency.as_secs_f64()),
            );
        }
        rec
    }

    /// Starts the policy as if it had been running at `replicas` until `now`: no scale-down
    /// before its window (cooldown, or the HPA's stabilisation) has shown less is needed. The
    /// controller primes at its first step, so that a restart never scales down at once; the
    /// simulator starts every policy from the same steady state.
    pub fn prime(&mut self, now: Instant, replicas: u32) {
        match self {
            Policy::Predictive(p) => p.prime(now, replicas),
            Policy::Hpa(hpa) | Policy::Queue(hpa, _) => hpa.prime(now, replicas),
            Policy::Static(_) => {}
        }
    }

    /// The forecaster of the policies that have one (`predictive`).
    pub fn forecaster(&self) -> Option<&Forecaster> {
        match self {
            Policy::Predictive(p) => Some(p.forecaster()),
            _ => None,
        }
    }

    /// What [`crate::checkpoint`] saves of the policies that learn (`predictive`): the
    /// forecaster and its recent errors.
    pub fn learned(&self) -> Option<(&Forecaster, &ErrorTracker)> {
        match self {
            Policy::Predictive(p) => Some(p.learned()),
            _ => None,
        }
    }

    /// The same, to restore into.
    pub fn learned_mut(&mut self) -> Option<(&mut Forecaster, &mut ErrorTracker)> {
        match self {
            Policy::Predictive(p) => Some(p.learned_mut()),
            _ => None,
        }
    }

    /// Tells the policy that the target went from `from` to `to` replicas at `now`.
    pub fn on_scaled(&mut self, now: Instant, from: u32, to: u32) {
        match self {
            Policy::Hpa(hpa) | Policy::Queue(hpa, _) => hpa.on_scaled(now, from, to),
            // The predictive rule's windows run on its own decisions, not on scale events.
            Policy::Predictive(_) | Policy::Static(_) => {}
        }
    }

    /// The 0 ↔ 1 gate of the policies that may scale to zero.
    fn scale_to_zero(&mut self) -> Option<&mut ScaleToZero> {
        match self {
            Policy::Predictive(p) => Some(p.scale_to_zero()),
            Policy::Queue(_, gate) => Some(gate),
            Policy::Hpa(_) | Policy::Static(_) => None,
        }
    }
}

fn plain(current: u32, replicas: u32, reason: &'static str) -> Recommendation {
    Recommendation {
        replicas,
        direction: Direction::of(current, replicas),
        reason,
        forecast_rate: None,
        sla_violation_probability: None,
        panic: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for s in ["predictive", "hpa", "queue", "static:3", "static:0"] {
            assert_eq!(s.parse::<PolicySpec>().unwrap().to_string(), s);
        }
        assert!("static:".parse::<PolicySpec>().is_err());
        assert!("static:-1".parse::<PolicySpec>().is_err());
        assert!("knative".parse::<PolicySpec>().is_err());
    }

    #[test]
    fn every_policy_honours_the_breaker_and_holds_without_telemetry() {
        let tuning = Tuning::default();
        let now = Instant::now();
        let idle = Telemetry {
            arrival_rate: Some(0.0),
            queue_length: Some(0.0),
            in_flight: Some(0.0),
            utilisation: Some(0.0),
            ..Telemetry::empty(now)
        };
        for spec in [PolicySpec::Predictive, PolicySpec::Hpa, PolicySpec::Queue] {
            let mut policy = Policy::new(spec, &tuning, Duration::from_secs(15));
            let frozen = Observation {
                now,
                current_replicas: 8,
                telemetry: Some(idle),
                fresh: true,
                scale_down_allowed: false,
            };
            let rec = policy.decide(&frozen, &tuning);
            assert_eq!((rec.replicas, rec.reason), (8, "breakerOpen"), "{spec}");
            let blind = Observation {
                telemetry: None,
                ..frozen
            };
            assert_eq!(policy.decide(&blind, &tuning).reason, "noTelemetry");
        }
        let mut fixed = Policy::new(PolicySpec::Static(3), &tuning, Duration::from_secs(15));
        let obs = Observation {
            now,
            current_replicas: 1,
            telemetry: None,
            fresh: false,
            scale_down_allowed: true,
        };
        assert_eq!(fixed.decide(&obs, &tuning).replicas, 3);
    }
}
