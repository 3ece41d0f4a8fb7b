//! Table-driven tests of the sizing rule and its stability controls, on an injected clock.

use super::*;

fn params() -> DecisionParams {
    DecisionParams {
        service_rate_per_pod: 10.0,
        target_utilization: 0.7,
        sla_latency: Duration::from_millis(500),
        sla_violation_probability: 0.05,
        min_replicas: 2,
        max_replicas: 40,
        scale_down_cooldown: Duration::from_secs(120),
        safety_margin: 1.0,
        queue_drain: Duration::from_secs(30),
        max_step_up: Some(4),
        max_step_down: Some(2),
        cost: None,
        panic: None,
    }
}

fn input(now: Instant, current: u32, observed: f64, forecast: f64) -> DecisionInput {
    DecisionInput {
        now,
        current_replicas: current,
        observed_rate: observed,
        forecast_rate: forecast,
        expected_rate: None,
        queue_length: 0.0,
        service_rate_per_pod: None,
        scale_down_allowed: true,
    }
}

#[test]
fn needed_is_the_larger_of_the_utilisation_and_sla_bounds() {
    let d = Decider::new(params());
    for lambda in [0.5, 5.0, 37.0, 100.0, 250.0] {
        let by_utilisation = (lambda / 7.0f64).ceil() as u32;
        let by_sla = Load::new(lambda, 10.0)
            .required_servers(0.5, 0.05, 40)
            .servers;
        assert_eq!(
            d.needed(lambda, 0.0, 10.0),
            by_utilisation.max(by_sla),
            "λ={lambda}"
        );
    }
    // A tight SLA makes the SLA bound the binding one.
    let strict = Decider::new(DecisionParams {
        sla_latency: Duration::ZERO,
        sla_violation_probability: 0.001,
        target_utilization: 1.0,
        ..params()
    });
    assert!(strict.needed(100.0, 0.0, 10.0) > 10);
    // The queue adds its drain rate: 300 waiting over 30 s = 10/s more.
    assert_eq!(d.needed(90.0, 300.0, 10.0), d.needed(100.0, 0.0, 10.0));
    // The safety margin scales the load.
    let margin = Decider::new(DecisionParams {
        safety_margin: 2.0,
        ..params()
    });
    assert_eq!(margin.needed(50.0, 0.0, 10.0), d.needed(100.0, 0.0, 10.0));
}

#[test]
fn scales_down_only_when_both_current_and_forecast_load_allow() {
    let t0 = Instant::now();
    let mut d = Decider::new(DecisionParams {
        max_step_down: None,
        ..params()
    });
    let high = d.needed(100.0, 0.0, 10.0);
    // Forecast says low, observed says high: no scale-down.
    let dec = d.decide(&input(t0, high, 100.0, 10.0));
    assert_eq!((dec.desired, dec.direction), (high, Direction::Hold));
    // Observed low, forecast high (traffic is coming): no scale-down either.
    let dec = d.decide(&input(t0, high, 10.0, 100.0));
    assert_eq!(dec.direction, Direction::Hold);
    // Both low: scale down.
    let dec = d.decide(&input(t0, high, 10.0, 10.0));
    assert_eq!(dec.desired, d.needed(10.0, 0.0, 10.0).max(2));
    assert_eq!(dec.direction, Direction::Down);
}

#[test]
fn cooldown_holds_scale_down_after_any_scaling() {
    let t0 = Instant::now();
    let mut d = Decider::new(params());
    d.on_scaled(t0);
    let at = |s: u64| t0 + Duration::from_secs(s);
    let dec = d.decide(&input(at(119), 10, 1.0, 1.0));
    assert_eq!((dec.desired, dec.reason), (10, DecisionReason::Cooldown));
    // Scaling up is never held by the cooldown.
    let up = d.decide(&input(at(60), 10, 90.0, 90.0));
    assert_eq!(up.direction, Direction::Up);
    let dec = d.decide(&input(at(120), 10, 1.0, 1.0));
    assert_eq!((dec.desired, dec.reason), (8, DecisionReason::StepLimited));
}

#[test]
fn steps_are_limited_both_ways_and_bounds_always_hold() {
    let t0 = Instant::now();
    let mut d = Decider::new(params());
    let dec = d.decide(&input(t0, 3, 200.0, 200.0));
    assert_eq!((dec.desired, dec.reason), (7, DecisionReason::StepLimited));
    let dec = d.decide(&input(t0, 20, 0.0, 0.0));
    assert_eq!((dec.desired, dec.reason), (18, DecisionReason::StepLimited));
    // Load beyond what 40 replicas can carry: capped at max.
    let dec = d.decide(&input(t0, 38, 10_000.0, 10_000.0));
    assert_eq!((dec.desired, dec.reason), (40, DecisionReason::Bounds));
    assert_eq!(dec.sla_violation_probability, 1.0);
    // Below min (someone scaled to 0 by hand): back to min even past the step limit.
    let dec = d.decide(&input(t0, 0, 0.0, 0.0));
    assert_eq!(dec.desired, 2);
    // Far above max: straight down to max.
    let dec = d.decide(&input(t0, 100, 0.0, 0.0));
    assert_eq!(dec.desired, 40);
}

#[test]
fn an_open_breaker_freezes_scale_down_but_not_scale_up() {
    let t0 = Instant::now();
    let mut d = Decider::new(params());
    let mut frozen = input(t0, 10, 0.0, 0.0);
    frozen.scale_down_allowed = false;
    let dec = d.decide(&frozen);
    assert_eq!((dec.desired, dec.reason), (10, DecisionReason::BreakerOpen));
    frozen.observed_rate = 100.0;
    frozen.forecast_rate = 100.0;
    assert_eq!(d.decide(&frozen).direction, Direction::Up);
}

#[test]
fn panic_mode_skips_the_step_limit_and_holds_scale_down_for_its_window() {
    let t0 = Instant::now();
    let mut d = Decider::new(DecisionParams {
        scale_down_cooldown: Duration::ZERO,
        panic: Some(PanicParams {
            threshold: 2.0,
            window: Duration::from_secs(60),
        }),
        ..params()
    });
    let mut surge = input(t0, 3, 200.0, 40.0);
    surge.expected_rate = Some(40.0);
    let dec = d.decide(&surge);
    assert!(dec.panic);
    assert_eq!(
        (dec.desired, dec.reason),
        (d.needed(200.0, 0.0, 10.0), DecisionReason::Panic)
    );
    assert!(dec.desired > 3 + 4, "panic must bypass the +4 step limit");
    // A lull within the window is not trusted.
    let dec = d.decide(&input(t0 + Duration::from_secs(30), 30, 1.0, 1.0));
    assert_eq!((dec.desired, dec.reason), (30, DecisionReason::Panic));
    // After the window, scale-down resumes (step-limited).
    let dec = d.decide(&input(t0 + Duration::from_secs(61), 30, 1.0, 1.0));
    assert!(!dec.panic);
    assert_eq!((dec.desired, dec.direction), (28, Direction::Down));
    // Doubling at a tiny rate (less than one replica's worth) is noise, not a surge.
    let mut tiny = input(t0 + Duration::from_secs(200), 2, 3.0, 1.0);
    tiny.expected_rate = Some(1.0);
    assert!(!d.decide(&tiny).panic);
}

#[test]
fn the_cost_step_buys_pods_only_when_violations_cost_more() {
    // With a zero-wait SLA every extra pod still cuts P(wait) noticeably.
    let params = || DecisionParams {
        sla_latency: Duration::ZERO,
        sla_violation_probability: 0.5,
        ..params()
    };
    let base = Decider::new(params()).needed(100.0, 0.0, 10.0);
    let cheap = Decider::new(DecisionParams {
        cost: Some(CostParams {
            pod_cost_per_hour: 1.0,
            violation_cost: 0.01,
        }),
        ..params()
    });
    assert!(cheap.needed(100.0, 0.0, 10.0) > base);
    let pricey = Decider::new(DecisionParams {
        cost: Some(CostParams {
            pod_cost_per_hour: 1e9,
            violation_cost: 0.01,
        }),
        ..params()
    });
    assert_eq!(pricey.needed(100.0, 0.0, 10.0), base);
}

#[test]
fn a_measured_service_rate_replaces_the_configured_one() {
    let t0 = Instant::now();
    let mut d = Decider::new(DecisionParams {
        max_step_up: None,
        ..params()
    });
    let mut i = input(t0, 2, 100.0, 100.0);
    let configured = d.decide(&i).desired;
    i.service_rate_per_pod = Some(20.0);
    let measured = d.decide(&i).desired;
    assert!(measured < configured, "{measured} vs {configured}");
    i.service_rate_per_pod = Some(f64::NAN);
    assert_eq!(d.decide(&i).desired, configured);
}
