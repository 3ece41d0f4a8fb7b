//! The predictive sizing rule and its stability controls. Pure: time comes in as an argument.
//!
//! Replicas needed for a load λ (requests/s) are the larger of two bounds, computed on
//! `λ × safetyMargin` plus the rate that drains, within `queueDrainSeconds`, the backlog there
//! will be when new replicas are ready (the queue now, plus what the current replicas fall
//! behind during the cold start):
//! - utilisation: `ceil(λ / (μ · maxUtilization))`;
//! - SLA: the smallest k with P(wait > `slaLatencySeconds`) ≤ `slaViolationProbability` in an
//!   M/M/k queue ([`crate::queueing`]).
//!
//! An optional cost step then adds replicas while one more pod costs less than the SLA
//! violations it saves. The count needed is the larger of the needs of the forecast and of the
//! load observed now, so the controller scales down only when both allow it. Stability
//! controls follow: min/max; a scale-down cooldown (a scale-down goes no lower than the
//! highest need of the last `scaleDownCooldownSeconds`, so the need must have been lower for
//! that long, the way the HPA's stabilisation window works); a scale-down tolerance (no
//! scale-down by `scaleDownTolerance` of the count or less, the HPA's tolerance applied to
//! the way down only); the largest step per interval; a
//! breaker that can freeze scale-down; and a panic mode that scales up at once (ignoring the
//! step limit) when observed load jumps far above what was forecast.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::queueing::Load;

/// The sizing rule's parameters (validated from the tuning file, `tuning.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionParams {
    /// μ: requests per second one replica completes.
    pub service_rate_per_pod: f64,
    /// The `hpa` policy's target (and the simulator's warm start); not used by this rule.
    pub target_utilization: f64,
    /// The utilisation bound: replicas ≥ λ' / (μ × this).
    pub max_utilization: f64,
    pub sla_latency: Duration,
    pub sla_violation_probability: f64,
    /// Time from asking for a replica to it serving.
    pub cold_start: Duration,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// How long the need must have been lower before a scale-down follows it.
    pub scale_down_cooldown: Duration,
    /// Scale down only when the need is below the current count by more than this fraction
    /// of it: a need wobbling by a replica on noise does not remove and re-add one.
    pub scale_down_tolerance: f64,
    pub safety_margin: f64,
    /// The backlog when new replicas are ready is drained within this time, on top of the
    /// arrival rate.
    pub queue_drain: Duration,
    /// Most replicas added per decision (outside panic mode); `None`: no limit.
    pub max_step_up: Option<u32>,
    /// Most replicas removed per decision; `None`: no limit.
    pub max_step_down: Option<u32>,
    pub cost: Option<CostParams>,
    pub panic: Option<PanicParams>,
}

impl Default for DecisionParams {
    fn default() -> Self {
        Self {
            service_rate_per_pod: 10.0,
            target_utilization: 0.7,
            max_utilization: 0.9,
            sla_latency: Duration::from_millis(500),
            sla_violation_probability: 0.05,
            cold_start: Duration::from_secs(30),
            min_replicas: 1,
            max_replicas: 50,
            scale_down_cooldown: Duration::from_secs(300),
            scale_down_tolerance: 0.1,
            safety_margin: 1.1,
            queue_drain: Duration::from_secs(30),
            max_step_up: None,
            max_step_down: None,
            cost: None,
            panic: Some(PanicParams::default()),
        }
    }
}

/// The optional cost step: add a pod while `violation_cost × violations saved per hour`
/// exceeds `pod_cost_per_hour`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostParams {
    pub pod_cost_per_hour: f64,
    pub violation_cost: f64,
}

/// Panic mode: when observed load exceeds `threshold ×` the load forecast for now (by at least
/// one replica's worth), size for the surge continuing one more interval (observed + surge),
/// scale up without the step limit, and allow no scale-down for `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PanicParams {
    pub threshold: f64,
    pub window: Duration,
}

impl Default for PanicParams {
    fn default() -> Self {
        Self {
            threshold: 1.5,
            window: Duration::from_secs(60),
        }
    }
}

/// What the rule sees at one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionInput {
    pub now: Instant,
    pub current_replicas: u32,
    /// Arrival rate observed over the last interval.
    pub observed_rate: f64,
    /// The rate forecast to size for (the predictive policy: an upper bound over the cold start).
    pub forecast_rate: f64,
    /// What the forecaster expected for *now* (its one-step forecast from the last interval);
    /// panic mode compares the observed rate against it.
    pub expected_rate: Option<f64>,
    pub queue_length: f64,
    /// A measured per-replica service rate to use instead of the configured one.
    pub service_rate_per_pod: Option<f64>,
    /// False while the telemetry breaker is open.
    pub scale_down_allowed: bool,
}

/// Why the decision is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DecisionReason {
    /// The sizing rule's answer, unconstrained.
    Sized,
    /// Scale-down held (or shortened): the need was higher within the cooldown window.
    Cooldown,
    /// Scale-down held: the telemetry breaker is open.
    BreakerOpen,
    /// Panic mode: scaled up without the step limit, scale-down held.
    Panic,
    /// Limited by the largest step per interval.
    StepLimited,
    /// Scale-down held: the need is within `scaleDownTolerance` of the current count.
    Tolerance,
    /// Clamped to min or max replicas.
    Bounds,
}

/// Direction of a decision relative to the current count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Up,
    Down,
    Hold,
}

impl Direction {
    pub fn of(current: u32, desired: u32) -> Self {
        match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        }
    }

    /// The `direction` label of `autoscaler_decisions_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Hold => "hold",
        }
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub desired: u32,
    pub direction: Direction,
    pub reason: DecisionReason,
    /// Replicas the rule asked for before stability controls.
    pub needed: u32,
    /// P(wait > SLA) at `desired` for the larger of the forecast and observed load.
    pub sla_violation_probability: f64,
    pub panic: bool,
}

/// The rule plus the little state its stability controls need.
#[derive(Debug, Clone)]
pub struct Decider {
    params: DecisionParams,
    /// Needs (clamped to min/max) within the cooldown window, oldest first.
    recent_needs: VecDeque<(Instant, u32)>,
    panic_until: Option<Instant>,
}

impl Decider {
    pub fn new(params: DecisionParams) -> Self {
        Self {
            params,
            recent_needs: VecDeque::new(),
            panic_until: None,
        }
    }

    pub fn params(&self) -> &DecisionParams {
        &self.params
    }

    /// Replicas needed for `rate` requests/s with `queue` waiting and `current` replicas
    /// serving, before stability controls (`max_replicas + 1` when even `max_replicas` is not
    /// enough).
    pub fn needed(&self, rate: f64, queue: f64, mu: f64, current: u32) -> u32 {
        let p = &self.params;
        let rate = rate.max(0.0);
        // What the queue will hold when replicas asked for now are ready.
        let shortfall = (rate - f64::from(current) * mu).max(0.0);
        let backlog = queue.max(0.0) + shortfall * p.cold_start.as_secs_f64();
        let drain = backlog / p.queue_drain.as_secs_f64().max(1e-3);
        let lambda = rate * p.safety_margin + drain;
        let load = Load::new(lambda, mu);
        // Either bound may exceed max_replicas: report it as max + 1 so that callers see the
        // clamp, without searching past max.
        let beyond = p.max_replicas.saturating_add(1);
        let by_utilisation = (lambda / (mu * p.max_utilization)).ceil();
        let by_utilisation = if by_utilisation <= f64::from(p.max_replicas) {
            by_utilisation.max(0.0) as u32
        } else {
            beyond
        };
        let sla = load.required_servers(
            p.sla_latency.as_secs_f64(),
            p.sla_violation_probability,
            p.max_replicas,
        );
        let by_sla = if sla.feasible { sla.servers } else { beyond };
        let k = by_utilisation.max(by_sla);
        match p.cost {
            Some(cost) => self.cost_step(load, k, cost),
            None => k,
        }
    }

    /// Adds replicas while the hourly SLA-violation cost they save exceeds their own cost.
    fn cost_step(&self, load: Load, mut k: u32, cost: CostParams) -> u32 {
        let t = self.params.sla_latency.as_secs_f64();
        let per_hour = load.arrival_rate * 3600.0;
        let mut p = load.wait_probability(k, t);
        while k < self.params.max_replicas {
            let q = load.wait_probability(k + 1, t);
            if (p - q) * per_hour * cost.violation_cost <= cost.pod_cost_per_hour {
                break;
            }
            k += 1;
            p = q;
        }
        k
    }

    /// Decides the replica count at `input.now`.
    pub fn decide(&mut self, input: &DecisionInput) -> Decision {
        let mu = input
            .service_rate_per_pod
            .filter(|m| m.is_finite() && *m > 0.0)
            .unwrap_or(self.params.service_rate_per_pod);
        let (panic, surge) = self.update_panic(input, mu);
        let p = &self.params;
        // A surge just detected is assumed to go on rising for one more interval.
        let surging = input.observed_rate + surge;
        let peak = input.forecast_rate.max(surging);
        let (queue, current) = (input.queue_length, input.current_replicas);
        let needed = self
            .needed(input.forecast_rate, queue, mu, current)
            .max(self.needed(surging, queue, mu, current));
        let bounded = needed.clamp(p.min_replicas, p.max_replicas);
        let floor = self.remember_need(input.now, bounded);
        let p = &self.params;
        let (desired, reason) = if bounded > current {
            match p.max_step_up {
                Some(step) if !panic && bounded - current > step => {
                    (current + step, DecisionReason::StepLimited)
                }
                _ if panic => (bounded, DecisionReason::Panic),
                _ => (bounded, reason_for(needed, bounded)),
            }
        } else if bounded < current {
            self.limit_scale_down(input, bounded, floor, panic)
        } else {
            (bounded, reason_for(needed, bounded))
        };
        // Stability controls never move the count outside [min, max].
        let desired = desired.clamp(p.min_replicas, p.max_replicas);
        let load = Load::new(peak * p.safety_margin, mu);
        Decision {
            desired,
            direction: Direction::of(current, desired),
            reason,
            needed,
            sla_violation_probability: load.wait_probability(desired, p.sla_latency.as_secs_f64()),
            panic,
        }
    }

    /// Starts the cooldown window as if `replicas` had been needed at `now`: a controller that
    /// (re)starts does not scale down before a full window has shown less is needed.
    pub fn prime(&mut self, now: Instant, replicas: u32) {
        self.recent_needs.push_back((now, replicas));
    }

    /// Records this decision's need and returns the highest need within the cooldown window.
    fn remember_need(&mut self, now: Instant, need: u32) -> u32 {
        let window = self.params.scale_down_cooldown;
        while self
            .recent_needs
            .front()
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) >= window)
        {
            self.recent_needs.pop_front();
        }
        self.recent_needs.push_back((now, need));
        self.recent_needs
            .iter()
            .map(|&(_, n)| n)
            .max()
            .unwrap_or(need)
    }

    fn limit_scale_down(
        &self,
        input: &DecisionInput,
        bounded: u32,
        floor: u32,
        panic: bool,
    ) -> (u32, DecisionReason) {
        let p = &self.params;
        let current = input.current_replicas;
        if panic {
            return (current, DecisionReason::Panic);
        }
        if !input.scale_down_allowed {
            return (current, DecisionReason::BreakerOpen);
        }
        let (target, reason) = if floor > bounded {
            (floor.min(current), DecisionReason::Cooldown)
        } else {
            (bounded, DecisionReason::Sized)
        };
        // Within the tolerance band (the HPA's `|ratio − 1| ≤ tolerance`, downwards): hold.
        let band = f64::from(current) * p.scale_down_tolerance;
        if target < current && f64::from(current - target) <= band {
            return (current, DecisionReason::Tolerance);
        }
        match p.max_step_down {
            Some(step) if current - target > step => (current - step, DecisionReason::StepLimited),
            _ => (target, reason),
        }
    }

    /// Enters panic mode when the observed rate is far above what was expected. Returns
    /// whether panic mode is on at `input.now`, and the surge (observed − expected) when one
    /// was detected now (else 0).
    fn update_panic(&mut self, input: &DecisionInput, mu: f64) -> (bool, f64) {
        let Some(panic) = self.params.panic else {
            return (false, 0.0);
        };
        let mut detected = 0.0;
        if let Some(expected) = input.expected_rate {
            let surge = input.observed_rate - expected;
            if input.observed_rate > panic.threshold * expected && surge >= mu {
                detected = surge;
                if self.panic_until.is_none_or(|until| input.now >= until) {
                    tracing::warn!(
                        observed = input.observed_rate,
                        expected,
                        "observed load far above forecast: panic mode"
                    );
                }
                self.panic_until = Some(input.now + panic.window);
            }
        }
        (
            self.panic_until.is_some_and(|until| input.now < until),
            detected,
        )
    }
}

fn reason_for(needed: u32, bounded: u32) -> DecisionReason {
    if needed == bounded {
        DecisionReason::Sized
    } else {
        DecisionReason::Bounds
    }
}

#[cfg(test)]
mod tests;
