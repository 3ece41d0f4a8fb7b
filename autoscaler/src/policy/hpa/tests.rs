//! Hand-computed HPA sequences: tolerance, stabilisation windows, rate policies, unready pods.

use super::*;

fn at(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn utilisation_hpa(target: f64, behavior: Behavior) -> Hpa {
    Hpa::new(HpaParams {
        min_replicas: 1,
        max_replicas: 100,
        tolerance: 0.1,
        behavior,
        metric: HpaMetric::Utilization { target },
    })
}

fn ready(value: f64, ready: u32) -> Option<MetricSample> {
    Some(MetricSample {
        value,
        ready,
        unready: 0,
    })
}

fn rules(window: u64, select: SelectPolicy, policies: &[(RateKind, u32, u64)]) -> ScalingRules {
    ScalingRules {
        stabilization_window: Duration::from_secs(window),
        select_policy: select,
        policies: policies
            .iter()
            .map(|&(kind, value, period)| RatePolicy {
                kind,
                value,
                period: Duration::from_secs(period),
            })
            .collect(),
    }
}

#[test]
fn tolerance_suppresses_small_changes() {
    let t0 = Instant::now();
    let mut hpa = utilisation_hpa(0.5, Behavior::default());
    // ratio 1.08: within 10 %.
    assert_eq!(hpa.decide(t0, 4, ready(0.54, 4)).desired, 4);
    // ratio 1.12: ceil(1.12 × 4) = 5.
    assert_eq!(hpa.decide(at(t0, 15), 4, ready(0.56, 4)).desired, 5);
    // No metrics: no change.
    let d = hpa.decide(at(t0, 30), 4, None);
    assert_eq!((d.desired, d.reason), (4, "FailedGetMetrics"));
}

#[test]
fn default_scale_up_is_the_larger_of_double_and_plus_four_per_15s() {
    let t0 = Instant::now();
    let mut hpa = utilisation_hpa(0.1, Behavior::default());
    // ratio 10: raw 20; limits: 2 × 2 = 4 and 2 + 4 = 6 → 6.
    let d = hpa.decide(t0, 2, ready(1.0, 2));
    assert_eq!((d.desired, d.reason), (6, "ScaleUpLimit"));
    hpa.on_scaled(t0, 2, 6);
    // 10 s later the +4 of the last period still counts: period start 2, limit 6 → no change.
    assert_eq!(hpa.decide(at(t0, 10), 6, ready(1.0, 2)).desired, 6);
    // At 15 s the event has left the period: limits 12 and 10 → 12.
    let d = hpa.decide(at(t0, 15), 6, ready(1.0, 6));
    assert_eq!((d.desired, d.reason), (12, "ScaleUpLimit"));
    hpa.on_scaled(at(t0, 15), 6, 12);
    // raw = ceil(10 × 12) = 120 > max 100; limits 24 and 16 → 24.
    assert_eq!(hpa.decide(at(t0, 30), 12, ready(1.0, 12)).desired, 24);
}

#[test]
fn default_scale_down_waits_for_the_300s_window() {
    let t0 = Instant::now();
    let mut hpa = utilisation_hpa(0.5, Behavior::default());
    assert_eq!(hpa.decide(t0, 10, ready(0.5, 10)).desired, 10);
    // Load falls to a fifth: raw = ceil(0.2 × 10) = 2, but 10 is within the window.
    for s in (15..300).step_by(15) {
        let d = hpa.decide(at(t0, s), 10, ready(0.1, 10));
        assert_eq!(d.desired, 10, "t={s}");
    }
    // At 300 s the recommendation of t = 0 is out of the window; 100 %/15 s allows all.
    let d = hpa.decide(at(t0, 300), 10, ready(0.1, 10));
    assert_eq!((d.desired, d.reason), (2, "DesiredWithinRange"));
}

#[test]
fn scale_up_stabilisation_uses_the_lowest_recent_recommendation() {
    let t0 = Instant::now();
    let mut hpa = utilisation_hpa(
        0.5,
        Behavior {
            scale_up: rules(60, SelectPolicy::Max, &[(RateKind::Percent, 1000, 15)]),
            ..Behavior::default()
        },
    );
    assert_eq!(hpa.decide(t0, 4, ready(0.5, 4)).desired, 4);
    // A spike: raw 8, but the recommendation of 4 at t = 0 is within 60 s.
    assert_eq!(hpa.decide(at(t0, 15), 4, ready(1.0, 4)).desired, 4);
    assert_eq!(hpa.decide(at(t0, 45), 4, ready(1.0, 4)).desired, 4);
    // At 60 s only the raw 8s remain.
    assert_eq!(hpa.decide(at(t0, 60), 4, ready(1.0, 4)).desired, 8);
}

#[test]
fn select_policy_min_max_and_disabled() {
    let t0 = Instant::now();
    let policies = [(RateKind::Pods, 2, 60), (RateKind::Percent, 50, 60)];
    let up = |select| {
        let mut hpa = utilisation_hpa(
            0.1,
            Behavior {
                scale_up: rules(0, select, &policies),
                ..Behavior::default()
            },
        );
        hpa.decide(t0, 10, ready(1.0, 10)).desired
    };
    assert_eq!(up(SelectPolicy::Max), 15);
    assert_eq!(up(SelectPolicy::Min), 12);
    assert_eq!(up(SelectPolicy::Disabled), 10);

    let down = |select| {
        let mut hpa = utilisation_hpa(
            0.5,
            Behavior {
                scale_down: rules(0, select, &policies),
                ..Behavior::default()
            },
        );
        hpa.decide(t0, 10, ready(0.05, 10)).desired
    };
    // Pods: 10 − 2 = 8; Percent: trunc(10 × 0.5) = 5. Max change → 5, Min change → 8.
    assert_eq!(down(SelectPolicy::Max), 5);
    assert_eq!(down(SelectPolicy::Min), 8);
    assert_eq!(down(SelectPolicy::Disabled), 10);
}

#[test]
fn scale_down_pods_policy_counts_events_within_its_period() {
    let t0 = Instant::now();
    let mut hpa = utilisation_hpa(
        0.5,
        Behavior {
            scale_down: rules(0, SelectPolicy::Max, &[(RateKind::Pods, 1, 60)]),
            ..Behavior::default()
        },
    );
    let d = hpa.decide(t0, 10, ready(0.25, 10));
    assert_eq!((d.desired, d.reason), (9, "ScaleDownLimit"));
    hpa.on_scaled(t0, 10, 9);
    // Period start is 10 until the event is 60 s old.
    assert_eq!(hpa.decide(at(t0, 30), 9, ready(0.25, 9)).desired, 9);
    assert_eq!(hpa.decide(at(t0, 60), 9, ready(0.25, 9)).desired, 8);
}

#[test]
fn unready_pods_count_as_idle_on_scale_up_only() {
    let t0 = Instant::now();
    let sample = |value| {
        Some(MetricSample {
            value,
            ready: 2,
            unready: 2,
        })
    };
    let mut hpa = utilisation_hpa(0.5, Behavior::default());
    // ratio 1.8, but with the 2 unready pods at 0: 0.9 → direction flips → keep 4.
    assert_eq!(hpa.decide(t0, 4, sample(0.9)).desired, 4);
    // ratio 3 → 1.5 with unready pods: ceil(1.5 × 4) = 6.
    assert_eq!(hpa.decide(at(t0, 15), 4, sample(1.5)).desired, 6);
    // Scale-down ignores unready pods: ratio 0.4 on 2 ready → ceil(0.8) = 1, held by the window.
    let mut hpa = utilisation_hpa(
        0.5,
        Behavior {
            scale_down: rules(0, SelectPolicy::Max, &[(RateKind::Percent, 100, 15)]),
            ..Behavior::default()
        },
    );
    assert_eq!(hpa.decide(t0, 4, sample(0.2)).desired, 1);
}

#[test]
fn average_value_metric_is_keda_style() {
    let t0 = Instant::now();
    let mut hpa = Hpa::new(HpaParams {
        min_replicas: 1,
        max_replicas: 50,
        tolerance: 0.1,
        behavior: Behavior::default(),
        metric: HpaMetric::AverageValue { target: 10.0 },
    });
    let total = |value| {
        Some(MetricSample {
            value,
            ready: 0,
            unready: 0,
        })
    };
    // 100 queued / 10 per replica = 10, limited to max(3 × 2, 3 + 4) = 7.
    assert_eq!(hpa.decide(t0, 3, total(100.0)).desired, 7);
    // 31 over 3 replicas: ratio 1.03, within tolerance.
    assert_eq!(hpa.decide(at(t0, 15), 3, total(31.0)).desired, 3);
}

#[test]
fn bounds_come_first() {
    let t0 = Instant::now();
    let mut hpa = utilisation_hpa(0.5, Behavior::default());
    assert_eq!(hpa.decide(t0, 0, ready(1.0, 0)).reason, "ScalingDisabled");
    assert_eq!(hpa.decide(t0, 500, ready(1.0, 500)).desired, 100);
}
