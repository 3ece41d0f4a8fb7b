//! The Kubernetes Horizontal Pod Autoscaler's algorithm (autoscaling/v2), step for step, so
//! that the simulator compares the predictive policy against what a cluster would really do.
//!
//! Each sync: the metric gives a raw recommendation (`ceil(current × usage/target)`, or
//! `ceil(total/target)` for an external `AverageValue` metric as KEDA uses, unchanged within
//! the tolerance); the stabilisation windows bound it by the lowest recent recommendation
//! (scale-up) and the highest (scale-down); the Pods/Percent policies bound the change per
//! period, combined by `selectPolicy`; min/max replicas apply. Unready pods count as idle on a
//! scale-up and are left out otherwise, like the controller's treatment of pods that are
//! not yet ready.

use std::time::{Duration, Instant};

/// `behavior.scaleUp` / `behavior.scaleDown`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    pub stabilization_window: Duration,
    pub select_policy: SelectPolicy,
    pub policies: Vec<RatePolicy>,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One entry of `policies`: at most `value` pods or percent per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    pub kind: RateKind,
    pub value: u32,
    pub period: Duration,
}

/// `type: Pods` or `type: Percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKind {
    Pods,
    Percent,
}

/// `spec.behavior`.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    /// What the API server fills in when `behavior` is omitted: scale up without
    /// stabilisation by the larger of 100 % or 4 pods per 15 s; scale down with a 300 s window
    /// by up to 100 % per 15 s.
    fn default() -> Self {
        let per_15s = |kind, value| RatePolicy {
            kind,
            value,
            period: Duration::from_secs(15),
        };
        Self {
            scale_up: ScalingRules {
                stabilization_window: Duration::ZERO,
                select_policy: SelectPolicy::Max,
                policies: vec![per_15s(RateKind::Percent, 100), per_15s(RateKind::Pods, 4)],
            },
            scale_down: ScalingRules {
                stabilization_window: Duration::from_secs(300),
                select_policy: SelectPolicy::Max,
                policies: vec![per_15s(RateKind::Percent, 100)],
            },
        }
    }
}

/// What the HPA scales on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HpaMetric {
    /// A resource metric with `target.type: Utilization` (fraction, e.g. 0.7).
    Utilization { target: f64 },
    /// An external metric with `target.type: AverageValue` (KEDA's scalers).
    AverageValue { target: f64 },
}

/// The HPA object's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaParams {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// `--horizontal-pod-autoscaler-tolerance`, 0.1 by default.
    pub tolerance: f64,
    pub behavior: Behavior,
    pub metric: HpaMetric,
}

/// One metric reading, as the controller's replica calculator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSample {
    /// Utilisation: mean usage of the ready pods (same unit as the target). AverageValue: the
    /// metric's total.
    pub value: f64,
    /// Pods that are ready and reporting.
    pub ready: u32,
    /// Pods that exist but are not ready yet.
    pub unready: u32,
}

/// An HPA's recommendation and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpaDecision {
    pub desired: u32,
    /// The controller's condition reason (`DesiredWithinRange`, `ScaleUpLimit`, ...).
    pub reason: &'static str,
}

/// One HPA object's controller state: recent recommendations and scale events.
#[derive(Debug, Clone)]
pub struct Hpa {
    params: HpaParams,
    recommendations: Vec<(Instant, u32)>,
    scale_up_events: Vec<(Instant, u32)>,
    scale_down_events: Vec<(Instant, u32)>,
}

impl Hpa {
    pub fn new(params: HpaParams) -> Self {
        Self {
            params,
            recommendations: Vec::new(),
            scale_up_events: Vec::new(),
            scale_down_events: Vec::new(),
        }
    }

    pub fn params(&self) -> &HpaParams {
        &self.params
    }

    /// One sync at `now` with `current` replicas (the scale's replica count).
    pub fn decide(
        &mut self,
        now: Instant,
        current: u32,
        sample: Option<MetricSample>,
    ) -> HpaDecision {
        let p = &self.params;
        if current == 0 && p.min_replicas != 0 {
            // A target scaled to zero by hand has autoscaling disabled.
            return HpaDecision {
                desired: 0,
                reason: "ScalingDisabled",
            };
        }
        if current > p.max_replicas {
            return HpaDecision {
                desired: p.max_replicas,
                reason: "TooManyReplicas",
            };
        }
        if current < p.min_replicas {
            return HpaDecision {
                desired: p.min_replicas,
                reason: "TooFewReplicas",
            };
        }
        let Some(raw) = sample.and_then(|s| self.replicas_for_metric(current, s)) else {
            return HpaDecision {
                desired: current,
                reason: "FailedGetMetrics",
            };
        };
        let stabilized = self.stabilize(now, raw, current);
        self.limit_rate(now, stabilized, current)
    }

    /// The replica calculator: the raw recommendation from the metric.
    fn replicas_for_metric(&self, current: u32, s: MetricSample) -> Option<u32> {
        if !s.value.is_finite() || s.value < 0.0 {
            return None;
        }
        let within = |ratio: f64| (1.0 - ratio).abs() <= self.params.tolerance;
        match self.params.metric {
            HpaMetric::AverageValue { target } => {
                let ratio = s.value / (target * f64::from(current.max(1)));
                Some(if within(ratio) {
                    current
                } else {
                    ceil_u32(s.value / target)
                })
            }
            HpaMetric::Utilization { target } => {
                if s.ready == 0 {
                    // "did not receive metrics for any ready pods"
                    return None;
                }
                let ratio = s.value / target;
                if s.unready == 0 || ratio <= 1.0 {
                    // Unready pods only matter on a scale-up; otherwise they are left out.
                    return Some(if within(ratio) {
                        current
                    } else {
                        ceil_u32(ratio * f64::from(s.ready))
                    });
                }
                // Scale-up with unready pods: count them as using nothing and recompute.
                let pods = f64::from(s.ready + s.unready);
                let new_ratio = s.value * f64::from(s.ready) / pods / target;
                if within(new_ratio) || new_ratio < 1.0 {
                    return Some(current);
                }
                let replicas = ceil_u32(new_ratio * pods);
                Some(if replicas < current {
                    current
                } else {
                    replicas
                })
            }
        }
    }

    /// Records `raw` and returns it bounded by the recommendations within the windows.
    fn stabilize(&mut self, now: Instant, raw: u32, current: u32) -> u32 {
        let up_window = self.params.behavior.scale_up.stabilization_window;
        let down_window = self.params.behavior.scale_down.stabilization_window;
        let (mut up, mut down) = (raw, raw);
        for &(at, rec) in &self.recommendations {
            let age = now.saturating_duration_since(at);
            if age < up_window {
                up = up.min(rec);
            }
            if age < down_window {
                down = down.max(rec);
            }
        }
        let keep = up_window.max(down_window);
        self.recommendations
            .retain(|&(at, _)| now.saturating_duration_since(at) < keep);
        self.recommendations.push((now, raw));
        current.max(up).min(down)
    }

    /// Applies the rate policies and min/max to the stabilised recommendation.
    fn limit_rate(&self, now: Instant, desired: u32, current: u32) -> HpaDecision {
        let p = &self.params;
        if desired > current {
            let limit = self.scale_up_limit(now, current).max(current);
            let (cap, why) = if p.max_replicas > limit {
                (limit, "ScaleUpLimit")
            } else {
                (p.max_replicas, "TooManyReplicas")
            };
            if desired > cap {
                return HpaDecision {
                    desired: cap,
                    reason: why,
                };
            }
        } else if desired < current {
            let limit = self.scale_down_limit(now, current).min(current);
            let (floor, why) = if p.min_replicas < limit {
                (limit, "ScaleDownLimit")
            } else {
                (p.min_replicas, "TooFewReplicas")
            };
            if desired < floor {
                return HpaDecision {
                    desired: floor,
                    reason: why,
                };
            }
        }
        HpaDecision {
            desired,
            reason: "DesiredWithinRange",
        }
    }

    /// Replicas at the start of a `period` ending now: current minus what was added plus what
    /// was removed within it.
    fn period_start(&self, now: Instant, period: Duration, current: u32) -> i64 {
        let within = |events: &[(Instant, u32)]| -> i64 {
            events
                .iter()
                .filter(|(at, _)| now.saturating_duration_since(*at) < period)
                .map(|&(_, n)| i64::from(n))
                .sum()
        };
        i64::from(current) - within(&self.scale_up_events) + within(&self.scale_down_events)
    }

    fn scale_up_limit(&self, now: Instant, current: u32) -> u32 {
        let rules = &self.params.behavior.scale_up;
        let proposals = rules.policies.iter().map(|policy| {
            let start = self.period_start(now, policy.period, current) as f64;
            match policy.kind {
                RateKind::Pods => start + f64::from(policy.value),
                RateKind::Percent => (start * (1.0 + f64::from(policy.value) / 100.0)).ceil(),
            }
        });
        let limit = match rules.select_policy {
            SelectPolicy::Disabled => return current,
            SelectPolicy::Max => proposals.fold(f64::MIN, f64::max),
            SelectPolicy::Min => proposals.fold(f64::MAX, f64::min),
        };
        clamp_u32(limit)
    }

    fn scale_down_limit(&self, now: Instant, current: u32) -> u32 {
        let rules = &self.params.behavior.scale_down;
        let proposals = rules.policies.iter().map(|policy| {
            let start = self.period_start(now, policy.period, current) as f64;
            match policy.kind {
                RateKind::Pods => start - f64::from(policy.value),
                // Truncated, as the controller's int32 conversion does.
                RateKind::Percent => (start * (1.0 - f64::from(policy.value) / 100.0)).trunc(),
            }
        });
        // For scale-down, the largest change is the lowest count.
        let limit = match rules.select_policy {
            SelectPolicy::Disabled => return current,
            SelectPolicy::Max => proposals.fold(f64::MAX, f64::min),
            SelectPolicy::Min => proposals.fold(f64::MIN, f64::max),
        };
        clamp_u32(limit)
    }

    /// Records `replicas` as the recommendation at `now`, as if the HPA had been running: a new
    /// HPA's first sync otherwise has no history and may scale down at once.
    pub fn prime(&mut self, now: Instant, replicas: u32) {
        self.recommendations.push((now, replicas));
    }

    /// Records a scale the controller carried out (events older than the longest policy period
    /// are dropped).
    pub fn on_scaled(&mut self, now: Instant, from: u32, to: u32) {
        let longest = |rules: &ScalingRules| {
            rules
                .policies
                .iter()
                .map(|p| p.period)
                .max()
                .unwrap_or_default()
        };
        let (events, change, period) = if to > from {
            (
                &mut self.scale_up_events,
                to - from,
                longest(&self.params.behavior.scale_up),
            )
        } else if to < from {
            (
                &mut self.scale_down_events,
                from - to,
                longest(&self.params.behavior.scale_down),
            )
        } else {
            return;
        };
        events.retain(|&(at, _)| now.saturating_duration_since(at) < period);
        events.push((now, change));
    }
}

fn ceil_u32(x: f64) -> u32 {
    clamp_u32(x.ceil())
}

fn clamp_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x as u32
    }
}

#[cfg(test)]
mod tests;
