//! The `hpa` section: the HPA's tolerance and an autoscaling/v2 `behavior`, as written in an
//! HPA manifest, with the API server's defaults for what is omitted and its range checks.

use serde::Deserialize;

use super::TuningError;
use crate::policy::hpa::{Behavior, RateKind, RatePolicy, ScalingRules, SelectPolicy};

/// `hpa`: the HPA's tolerance and an autoscaling/v2 `behavior`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HpaFile {
    pub tolerance: f64,
    pub behavior: BehaviorFile,
}

impl Default for HpaFile {
    fn default() -> Self {
        Self {
            tolerance: 0.1,
            behavior: BehaviorFile::default(),
        }
    }
}

/// `hpa.behavior`, as in an HPA manifest; what is omitted gets the API server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BehaviorFile {
    pub scale_up: Option<RulesFile>,
    pub scale_down: Option<RulesFile>,
}

/// `scaleUp` / `scaleDown`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RulesFile {
    pub stabilization_window_seconds: Option<u32>,
    pub select_policy: Option<SelectPolicyFile>,
    pub policies: Option<Vec<RatePolicyFile>>,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SelectPolicyFile {
    Max,
    Min,
    Disabled,
}

/// One `policies` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatePolicyFile {
    #[serde(rename = "type")]
    pub kind: RateKindFile,
    pub value: u32,
    pub period_seconds: u32,
}

/// `Pods` or `Percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RateKindFile {
    Pods,
    Percent,
}

impl BehaviorFile {
    pub(super) fn validate(&self) -> Result<Behavior, TuningError> {
        let defaults = Behavior::default();
        Ok(Behavior {
            scale_up: rules(
                "hpa.behavior.scaleUp",
                self.scale_up.as_ref(),
                defaults.scale_up,
            )?,
            scale_down: rules(
                "hpa.behavior.scaleDown",
                self.scale_down.as_ref(),
                defaults.scale_down,
            )?,
        })
    }
}

/// Fills what `file` omits from `default`, and checks the API server's ranges.
fn rules(
    key: &str,
    file: Option<&RulesFile>,
    default: ScalingRules,
) -> Result<ScalingRules, TuningError> {
    let Some(file) = file else {
        return Ok(default);
    };
    let window = match file.stabilization_window_seconds {
        Some(w) if w > 3600 => {
            return Err(TuningError::invalid(
                &format!("{key}.stabilizationWindowSeconds"),
                format!("must be in 0..=3600, got {w}"),
            ));
        }
        Some(w) => std::time::Duration::from_secs(u64::from(w)),
        None => default.stabilization_window,
    };
    let select_policy = match file.select_policy {
        Some(SelectPolicyFile::Max) => SelectPolicy::Max,
        Some(SelectPolicyFile::Min) => SelectPolicy::Min,
        Some(SelectPolicyFile::Disabled) => SelectPolicy::Disabled,
        None => default.select_policy,
    };
    let policies = match &file.policies {
        None => default.policies,
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, p)| rate_policy(&format!("{key}.policies[{i}]"), p))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if policies.is_empty() && select_policy != SelectPolicy::Disabled {
        return Err(TuningError::invalid(
            &format!("{key}.policies"),
            "needs at least one policy unless selectPolicy is Disabled",
        ));
    }
    Ok(ScalingRules {
        stabilization_window: window,
        select_policy,
        policies,
    })
}

fn rate_policy(key: &str, p: &RatePolicyFile) -> Result<RatePolicy, TuningError> {
    if p.value == 0 {
        return Err(TuningError::invalid(&format!("{key}.value"), "must be > 0"));
    }
    if !(1..=1800).contains(&p.period_seconds) {
        return Err(TuningError::invalid(
            &format!("{key}.periodSeconds"),
            format!("must be in 1..=1800, got {}", p.period_seconds),
        ));
    }
    Ok(RatePolicy {
        kind: match p.kind {
            RateKindFile::Pods => RateKind::Pods,
            RateKindFile::Percent => RateKind::Percent,
        },
        value: p.value,
        period: std::time::Duration::from_secs(u64::from(p.period_seconds)),
    })
}
