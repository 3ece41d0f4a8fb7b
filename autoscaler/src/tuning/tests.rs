//! The tuning file: defaults, the shipped example, and a message naming the key for every
//! rejected value.

use super::*;
use crate::forecast::ModelKind;
use crate::policy::hpa::{RateKind, SelectPolicy};

#[test]
fn built_in_defaults_and_the_shipped_example_are_valid() {
    let defaults = Tuning::default();
    assert_eq!(defaults.decision.max_replicas, 50);
    let shipped = include_str!("../../autoscaler.yaml");
    let tuning = Tuning::from_yaml(shipped, "autoscaler.yaml").unwrap();
    assert!(tuning.decision.service_rate_per_pod > 0.0);
}

#[test]
fn reference_keys_are_read() {
    let yaml = "
serviceRatePerPod: 12.5
targetUtilization: 0.6
coldStartSeconds: 45
slaLatencySeconds: 0.25
slaViolationProbability: 0.01
minWarmReplicas: 3
maxReplicas: 80
scaleDownCooldownSeconds: 600
scaleDownTolerance: 0.2
maxUtilization: 0.8
safetyMargin: 1.2
forecastingModel:
  type: holtWinters
  alpha: 0.4
  beta: 0.2
  period: 96
  historyLength: 200
hpa:
  behavior:
    scaleDown:
      selectPolicy: Min
      policies:
        - type: Pods
          value: 1
          periodSeconds: 60
";
    let t = Tuning::from_yaml(yaml, "test").unwrap();
    let d = &t.decision;
    assert_eq!(d.service_rate_per_pod, 12.5);
    assert_eq!(d.target_utilization, 0.6);
    assert_eq!(d.cold_start, Duration::from_secs(45));
    assert_eq!(d.sla_latency, Duration::from_millis(250));
    assert_eq!(d.sla_violation_probability, 0.01);
    assert_eq!((d.min_replicas, d.max_replicas), (3, 80));
    assert_eq!(d.scale_down_cooldown, Duration::from_secs(600));
    assert_eq!(d.safety_margin, 1.2);
    assert_eq!((d.scale_down_tolerance, d.max_utilization), (0.2, 0.8));
    assert_eq!(t.forecast.kind, ModelKind::HoltWinters { period: 96 });
    assert_eq!((t.forecast.alpha, t.forecast.beta), (0.4, 0.2));
    // scaleDown given in part: window keeps its default, the rest is as written.
    let down = &t.hpa_behavior.scale_down;
    assert_eq!(down.stabilization_window, Duration::from_secs(300));
    assert_eq!(down.select_policy, SelectPolicy::Min);
    assert_eq!(down.policies[0].kind, RateKind::Pods);
    // scaleUp omitted: the API server's default.
    assert_eq!(t.hpa_behavior.scale_up, Behavior::default().scale_up);
}

#[test]
fn invalid_values_name_their_key() {
    let cases = [
        ("serviceRatePerPod: 0", "serviceRatePerPod"),
        ("serviceRatePerPod: .nan", "serviceRatePerPod"),
        ("targetUtilization: 1.5", "targetUtilization"),
        ("coldStartSeconds: -1", "coldStartSeconds"),
        ("slaLatencySeconds: .inf", "slaLatencySeconds"),
        ("slaViolationProbability: 1", "slaViolationProbability"),
        ("minWarmReplicas: 9\nmaxReplicas: 8", "minWarmReplicas"),
        ("maxReplicas: 0", "maxReplicas"),
        ("scaleDownCooldownSeconds: -5", "scaleDownCooldownSeconds"),
        ("safetyMargin: 0", "safetyMargin"),
        ("scaleDownTolerance: 1", "scaleDownTolerance"),
        ("scaleDownTolerance: -0.1", "scaleDownTolerance"),
        ("maxUtilization: 0", "maxUtilization"),
        ("maxUtilization: 1.2", "maxUtilization"),
        ("scaleToZeroAfterSeconds: -1", "scaleToZeroAfterSeconds"),
        ("forecastingModel: {alpha: 0}", "forecastingModel.alpha"),
        ("forecastingModel: {beta: 2}", "forecastingModel.beta"),
        (
            "forecastingModel: {type: holtWinters}",
            "forecastingModel.period",
        ),
        (
            "forecastingModel: {type: holtWinters, period: 10, historyLength: 19}",
            "forecastingModel.historyLength",
        ),
        ("maxScaleDownStep: 0", "maxScaleDownStep"),
        ("panic: {threshold: 1}", "panic.threshold"),
        (
            "cost: {podCostPerHour: 0, violationCost: 1}",
            "cost.podCostPerHour",
        ),
        ("breaker: {dropFraction: 0}", "breaker.dropFraction"),
        ("breaker: {closeAfter: 0}", "breaker.closeAfter"),
        ("hpa: {tolerance: 1}", "hpa.tolerance"),
        (
            "hpa: {behavior: {scaleUp: {stabilizationWindowSeconds: 3601}}}",
            "hpa.behavior.scaleUp.stabilizationWindowSeconds",
        ),
        (
            "hpa: {behavior: {scaleDown: {policies: []}}}",
            "hpa.behavior.scaleDown.policies",
        ),
        (
            "hpa: {behavior: {scaleUp: {policies: [{type: Pods, value: 1, periodSeconds: 0}]}}}",
            "hpa.behavior.scaleUp.policies[0].periodSeconds",
        ),
        ("queue: {targetPerReplica: -1}", "queue.targetPerReplica"),
        (
            "prometheus: {queries: {arrivalRate: ''}}",
            "prometheus.queries.arrivalRate",
        ),
        (
            "prometheus: {timeoutSeconds: 0}",
            "prometheus.timeoutSeconds",
        ),
    ];
    for (yaml, key) in cases {
        let err = Tuning::from_yaml(yaml, "t.yaml").expect_err(yaml);
        match &err {
            TuningError::Invalid { key: k, .. } => assert_eq!(k, key, "{yaml}: {err}"),
            other => panic!("{yaml}: expected an invalid value, got {other}"),
        }
        assert!(err.to_string().starts_with(key), "{err}");
    }
}

#[test]
fn unknown_keys_type_errors_and_syntax_errors_carry_line_and_column() {
    let cases = [
        (
            "maxReplicas: 5\nserviceRatePerPods: 3\n",
            "serviceRatePerPods",
            2,
        ),
        ("forecastingModel:\n  type: arima\n", "arima", 2),
        ("maxReplicas: -1\n", "maxReplicas", 1),
        (
            "hpa:\n  behavior:\n    scaleUp:\n      selectPolicy: Fastest\n",
            "Fastest",
            4,
        ),
        ("maxReplicas: [1\n", "t.yaml", 1),
    ];
    for (yaml, needle, line) in cases {
        let err = Tuning::from_yaml(yaml, "t.yaml").expect_err(yaml);
        let text = err.to_string();
        assert!(matches!(err, TuningError::Yaml { .. }), "{text}");
        assert!(text.contains(needle), "{text} should mention {needle}");
        assert!(
            text.contains(&format!("line {line} column")),
            "{text} should name line {line}"
        );
    }
}

#[test]
fn overrides_beat_the_file_and_are_validated_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, "maxReplicas: 20\nserviceRatePerPod: 4\n").unwrap();
    let overrides = TuningOverrides {
        max_replicas: Some(30),
        ..TuningOverrides::default()
    };
    let t = Tuning::load(Some(&path), &overrides).unwrap();
    assert_eq!(t.decision.max_replicas, 30);
    assert_eq!(t.decision.service_rate_per_pod, 4.0);
    let bad = TuningOverrides {
        target_utilization: Some(0.0),
        ..TuningOverrides::default()
    };
    let err = Tuning::load(Some(&path), &bad).unwrap_err();
    assert!(err.to_string().starts_with("targetUtilization"), "{err}");
    let missing = Tuning::load(Some(&dir.path().join("nope.yaml")), &overrides).unwrap_err();
    assert!(missing.to_string().contains("nope.yaml"), "{missing}");
}

#[test]
fn invalid_values_in_a_file_say_where_the_file_sets_them() {
    let yaml = "maxReplicas: 8\nforecastingModel:\n  alpha: 0\n";
    let err = Tuning::from_yaml(yaml, "t.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "forecastingModel.alpha: must be in (0, 1], got 0 (t.yaml at line 3 column 10)"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, "targetUtilization: 0.5\nsafetyMargin: -0.5\n").unwrap();
    let err = Tuning::load(Some(&path), &TuningOverrides::default()).unwrap_err();
    let want = format!("({} at line 2 column 15)", path.display());
    assert!(err.to_string().ends_with(&want), "{err}");
    // A value a flag replaced is not the file's to point at.
    std::fs::write(&path, "targetUtilization: 0.5\n").unwrap();
    let flag = TuningOverrides {
        target_utilization: Some(0.0),
        ..TuningOverrides::default()
    };
    let err = Tuning::load(Some(&path), &flag).unwrap_err();
    assert_eq!(
        err.to_string(),
        "targetUtilization: must be in (0, 1], got 0"
    );
}

#[test]
fn bytes_that_are_not_utf8_are_an_error_at_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, b"maxReplicas: 5\nsafetyMargin: 1\xff\n").unwrap();
    let err = Tuning::load(Some(&path), &TuningOverrides::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TuningError::Yaml { .. }), "{text}");
    assert!(
        text.contains("a.yaml") && text.ends_with("invalid UTF-8 at line 2 column 16"),
        "{text}"
    );
}
