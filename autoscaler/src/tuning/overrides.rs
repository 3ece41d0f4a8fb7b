//! Flags and environment variables over the tuning file's top-level keys.

use super::file::TuningFile;

/// Flags and environment variables that override the file's top-level keys.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TuningOverrides {
    /// Requests per second one replica completes (`serviceRatePerPod`).
    #[arg(long, env = "SERVICE_RATE_PER_POD")]
    pub service_rate_per_pod: Option<f64>,
    /// Utilisation the replicas should run at, 0..1 (`targetUtilization`).
    #[arg(long, env = "TARGET_UTILIZATION")]
    pub target_utilization: Option<f64>,
    /// Seconds from asking for a replica to it serving (`coldStartSeconds`).
    #[arg(long, env = "COLD_START_SECONDS")]
    pub cold_start_seconds: Option<f64>,
    /// Queue wait the SLA allows, in seconds (`slaLatencySeconds`).
    #[arg(long, env = "SLA_LATENCY_SECONDS")]
    pub sla_latency_seconds: Option<f64>,
    /// Fraction of requests allowed to wait longer (`slaViolationProbability`).
    #[arg(long, env = "SLA_VIOLATION_PROBABILITY")]
    pub sla_violation_probability: Option<f64>,
    /// Replicas kept even without traffic (`minWarmReplicas`).
    #[arg(long, env = "MIN_WARM_REPLICAS")]
    pub min_warm_replicas: Option<u32>,
    /// Upper bound on replicas (`maxReplicas`).
    #[arg(long, env = "MAX_REPLICAS")]
    pub max_replicas: Option<u32>,
    /// Seconds after any scaling before a scale-down (`scaleDownCooldownSeconds`).
    #[arg(long, env = "SCALE_DOWN_COOLDOWN_SECONDS")]
    pub scale_down_cooldown_seconds: Option<f64>,
    /// Scale down only when the need is more than this fraction below the count
    /// (`scaleDownTolerance`).
    #[arg(long, env = "SCALE_DOWN_TOLERANCE")]
    pub scale_down_tolerance: Option<f64>,
    /// The predictive policy's utilisation bound, 0..1 (`maxUtilization`).
    #[arg(long, env = "MAX_UTILIZATION")]
    pub max_utilization: Option<f64>,
    /// With --min-warm-replicas 0: seconds without arrivals, queue or in-flight requests
    /// before the last replica goes (`scaleToZeroAfterSeconds`).
    #[arg(long, env = "SCALE_TO_ZERO_AFTER_SECONDS")]
    pub scale_to_zero_after_seconds: Option<f64>,
    /// Multiplier on the forecast load (`safetyMargin`).
    #[arg(long, env = "SAFETY_MARGIN")]
    pub safety_margin: Option<f64>,
}

impl TuningOverrides {
    /// True if `key` (a dotted YAML path) is one this sets: its value did not come from the
    /// file.
    pub(super) fn replaces(&self, key: &str) -> bool {
        let top = key.split(['.', '[']).next().unwrap_or_default();
        let set = [
            ("serviceRatePerPod", self.service_rate_per_pod.is_some()),
            ("targetUtilization", self.target_utilization.is_some()),
            ("coldStartSeconds", self.cold_start_seconds.is_some()),
            ("slaLatencySeconds", self.sla_latency_seconds.is_some()),
            (
                "slaViolationProbability",
                self.sla_violation_probability.is_some(),
            ),
            ("minWarmReplicas", self.min_warm_replicas.is_some()),
            ("maxReplicas", self.max_replicas.is_some()),
            (
                "scaleDownCooldownSeconds",
                self.scale_down_cooldown_seconds.is_some(),
            ),
            (
                "scaleToZeroAfterSeconds",
                self.scale_to_zero_after_seconds.is_some(),
            ),
            ("safetyMargin", self.safety_margin.is_some()),
            ("scaleDownTolerance", self.scale_down_tolerance.is_some()),
            ("maxUtilization", self.max_utilization.is_some()),
        ];
        set.iter().any(|&(name, is_set)| is_set && name == top)
    }

    pub(super) fn apply(&self, file: &mut TuningFile) {
        fn set<T: Copy>(slot: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        set(&mut file.service_rate_per_pod, self.service_rate_per_pod);
        set(&mut file.target_utilization, self.target_utilization);
        set(&mut file.cold_start_seconds, self.cold_start_seconds);
        set(&mut file.sla_latency_seconds, self.sla_latency_seconds);
        set(
            &mut file.sla_violation_probability,
            self.sla_violation_probability,
        );
        set(&mut file.min_warm_replicas, self.min_warm_replicas);
        set(&mut file.max_replicas, self.max_replicas);
        set(
            &mut file.scale_down_cooldown_seconds,
            self.scale_down_cooldown_seconds,
        );
        set(
            &mut file.scale_to_zero_after_seconds,
            self.scale_to_zero_after_seconds,
        );
        set(&mut file.safety_margin, self.safety_margin);
        set(&mut file.scale_down_tolerance, self.scale_down_tolerance);
        set(&mut file.max_utilization, self.max_utilization);
    }
}
