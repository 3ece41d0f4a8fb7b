//! The sweep on a short trace: its structure and its JSON. Dominance itself is tested with
//! hand-built points in `dominance`.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::simulate::ServiceTime;

fn short_ramp() -> Workload {
    // 15 min: 5/s, a climb to 60/s over 8 min, a plateau.
    let rates = (0..900)
        .map(|s| {
            let t = f64::from(s);
            if t < 120.0 {
                5.0
            } else {
                (5.0 + 55.0 * (t - 120.0) / 480.0).min(60.0)
            }
        })
        .collect();
    Workload::from_rates(rates)
}

fn params() -> SimParams {
    SimParams {
        interval: Duration::from_secs(15),
        cold_start: Duration::from_secs(30),
        sla_latency: Duration::from_millis(500),
        service: ServiceTime::Exponential { rate: 10.0 },
        seed: 3,
        queue_capacity: 10_000,
        initial_replicas: 1,
    }
}

#[test]
fn knob_values_go_from_the_cheapest_setting_to_the_most_generous() {
    let tuning = Tuning::default();
    let w = short_ramp();
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    let u = Knob::TargetUtilization.values(5, &tuning, &w);
    assert!(close(&u, &[0.9, 0.8, 0.7, 0.6, 0.5]), "{u:?}");
    let m = Knob::SafetyMargin.values(5, &tuning, &w);
    assert!(close(&m, &[0.8, 1.05, 1.3, 1.55, 1.8]), "{m:?}");
    let q = Knob::QueueTarget.values(3, &tuning, &w);
    assert!(
        (q[0] - 4.0).abs() < 1e-9 && (q[2] - 0.25).abs() < 1e-9,
        "{q:?}"
    );
    // Static counts: from the mean load at full use to the peak at 50 %, whole replicas.
    let n = Knob::Replicas.values(4, &tuning, &w);
    assert_eq!(n.first(), Some(&4.0));
    assert_eq!(n.last(), Some(&12.0));
    let (spec, t) = Knob::SafetyMargin.apply(PolicySpec::Predictive, 0.8, &tuning);
    assert_eq!(
        (spec, t.decision.safety_margin),
        (PolicySpec::Predictive, 0.8)
    );
    let (spec, _) = Knob::Replicas.apply(PolicySpec::Static(0), 7.0, &tuning);
    assert_eq!(spec, PolicySpec::Static(7));
}

#[test]
fn a_short_sweep_has_one_point_per_knob_value_and_the_documented_json() {
    let w = short_ramp();
    let policies = [
        PolicySpec::Hpa,
        PolicySpec::Predictive,
        PolicySpec::Static(0),
    ];
    let report = sweep(
        Path::new("ramp.txt"),
        &w,
        &policies,
        &Tuning::default(),
        &params(),
        3,
    );
    assert_eq!(report.policies.len(), 3);
    for p in &report.policies {
        let grid = p.frontier.iter().filter(|pt| !pt.refined).count();
        assert_eq!(grid, 3, "{}", p.policy);
        // Only predictive is searched between grid values, within the budget, in knob order.
        let refined = p.frontier.len() - grid;
        assert!(
            refined == 0 || (p.policy == "predictive" && refined <= 8 * 3),
            "{}: {refined} refined",
            p.policy
        );
        assert_eq!(
            p.at_defaults.is_some(),
            p.policy != "static",
            "{}",
            p.policy
        );
        for pt in &p.frontier {
            assert!(
                pt.pod_seconds > 0.0 && pt.pod_seconds <= 900.0 * 50.0,
                "{pt:?}"
            );
        }
    }
    // The HPA's cheapest setting (0.9) pays less than its most generous one (0.5).
    let hpa = &report.policies[0].frontier;
    assert!(hpa[0].pod_seconds < hpa[2].pod_seconds, "{hpa:?}");
    // A static count costs exactly N × the trace and never scales.
    for pt in &report.policies[2].frontier {
        assert_eq!(pt.scale_events, 0);
        assert!((pt.pod_seconds - pt.knob * 900.0).abs() < 1e-6, "{pt:?}");
    }
    // One comparison per other policy, and it agrees with the dominance rule.
    assert_eq!(report.comparisons.len(), 2);
    let c = &report.comparisons[0];
    assert_eq!((c.policy.as_str(), c.other.as_str()), ("predictive", "hpa"));
    let left = undominated(&report.policies[1].frontier, hpa);
    assert_eq!(c.dominates, left.is_empty());
    assert_eq!(c.undominated.len(), left.len());
    let grid: Vec<Point> = report.policies[1]
        .frontier
        .iter()
        .filter(|p| !p.refined)
        .copied()
        .collect();
    assert_eq!(c.undominated_on_grid.len(), undominated(&grid, hpa).len());
    assert!(c.undominated.len() <= c.undominated_on_grid.len());
    let knobs: Vec<f64> = report.policies[1].frontier.iter().map(|p| p.knob).collect();
    assert!(knobs.windows(2).all(|w| w[0] < w[1]), "{knobs:?}");
    let accuracy = report.forecast_accuracy;
    assert_eq!(accuracy.horizon_intervals, 3);
    assert!(accuracy.mase.is_some_and(|m| m.is_finite() && m > 0.0));
    let table = report.table();
    assert!(
        table.contains("forecast MASE at 3 intervals ahead"),
        "{table}"
    );
    assert!(
        table.contains("predictive") && table.contains("safetyMargin"),
        "{table}"
    );

    let json = serde_json::to_value(&report).unwrap();
    let policy = &json["policies"][1];
    assert_eq!(policy["policy"], "predictive");
    assert_eq!(policy["knob"], "safetyMargin");
    let point = &policy["frontier"][0];
    for key in [
        "knob",
        "podSeconds",
        "slaViolations",
        "scaleEvents",
        "refined",
    ] {
        assert!(point.get(key).is_some(), "{key} missing from {point}");
    }
    assert_eq!(json["policies"][2]["policy"], "static");
    assert!(json["forecastAccuracy"]["mase"].is_f64());
    assert!(json["comparisons"][0]["dominates"].is_boolean());
    assert!(json["comparisons"][0]["undominatedOnGrid"].is_array());
    assert!(json["comparisons"][0]["scaleEventRatioAtDefaults"].is_number());
}

#[test]
fn the_frontier_plot_is_a_png() {
    let w = Workload::from_rates(vec![20.0; 300]);
    let policies = [PolicySpec::Hpa, PolicySpec::Predictive];
    let report = sweep(
        Path::new("flat.txt"),
        &w,
        &policies,
        &Tuning::default(),
        &params(),
        2,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frontier.png");
    report.draw(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
}
