//! Table-driven tests of the sizing rule and its stability controls, on an injected clock.

use super::*;

fn params() -> DecisionParams {
    DecisionParams {
        service_rate_per_pod: 10.0,
        target_utilization: 0.7,
        max_utilization: 0.7,
        sla_latency: Duration::from_millis(500),
        sla_violation_probability: 0.05,
        cold_start: Duration::from_secs(30),
        min_replicas: 2,
        max_replicas: 40,
        scale_down_cooldown: Duration::ZERO,
        scale_down_tolerance: 0.0,
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
            d.needed(lambda, 0.0, 10.0, 1000),
            by_utilisation.max(by_sla),
            "λ={lambda}"
        );
    }
    // A tight SLA makes the SLA bound the binding one.
    let strict = Decider::new(DecisionParams {
        sla_latency: Duration::ZERO,
        sla_violation_probability: 0.001,
        max_utilization: 1.0,
        ..params()
    });
    assert!(strict.needed(100.0, 0.0, 10.0, 1000) > 10);
    // The queue adds its drain rate: 300 waiting over 30 s = 10/s more.
    assert_eq!(
        d.needed(90.0, 300.0, 10.0, 1000),
        d.needed(100.0, 0.0, 10.0, 1000)
    );
    // So does the backlog the current replicas will build up during the 30 s cold start:
    // 5 replicas serve 50/s of 90/s, so 1200 more wait, drained over 30 s = 40/s more.
    assert_eq!(
        d.needed(90.0, 0.0, 10.0, 5),
        d.needed(130.0, 0.0, 10.0, 1000)
    );
    // The safety margin scales the load.
    let margin = Decider::new(DecisionParams {
        safety_margin: 2.0,
        ..params()
    });
    assert_eq!(
        margin.needed(50.0, 0.0, 10.0, 1000),
        d.needed(100.0, 0.0, 10.0, 1000)
    );
}

#[test]
fn scales_down_only_when_both_current_and_forecast_load_allow() {
    let t0 = Instant::now();
    let mut d = Decider::new(DecisionParams {
        max_step_down: None,
        ..params()
    });
    let high = d.needed(100.0, 0.0, 10.0, 1000);
    // Forecast says low, observed says high: no scale-down.
    let dec = d.decide(&input(t0, high, 100.0, 10.0));
    assert_eq!((dec.desired, dec.direction), (high, Direction::Hold));
    // Observed low, forecast high (traffic is coming): no scale-down either.
    let dec = d.decide(&input(t0, high, 10.0, 100.0));
    assert_eq!(dec.direction, Direction::Hold);
    // Both low: scale down.
    let dec = d.decide(&input(t0, high, 10.0, 10.0));
    assert_eq!(dec.desired, d.needed(10.0, 0.0, 10.0, 1000).max(2));
    assert_eq!(dec.direction, Direction::Down);
}

#[test]
fn scale_down_waits_until_the_need_has_been_lower_for_the_cooldown() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut d = Decider::new(DecisionParams {
        scale_down_cooldown: Duration::from_secs(120),
        max_step_down: None,
        ..params()
    });
    let need = |rate: f64| Decider::new(params()).needed(rate, 0.0, 10.0, 1000).max(2);
    assert_eq!(
        d.decide(&input(at(0), need(70.0), 70.0, 70.0)).direction,
        Direction::Hold
    );
    let high = need(70.0);
    // The load falls at 60 s: held at the need of t = 0 while it is within 120 s, through a
    // bump at 100 s.
    for (s, rate) in [(60, 1.0), (90, 1.0), (100, 35.0), (119, 1.0)] {
        let dec = d.decide(&input(at(s), high, rate, rate));
        assert_eq!(
            (dec.desired, dec.reason),
            (high, DecisionReason::Cooldown),
            "t={s}"
        );
    }
    // Once t = 0 leaves the window, down only to the bump's need; later all the way.
    let dec = d.decide(&input(at(130), high, 1.0, 1.0));
    assert_eq!(
        (dec.desired, dec.reason),
        (need(35.0), DecisionReason::Cooldown)
    );
    let dec = d.decide(&input(at(220), need(35.0), 1.0, 1.0));
    assert_eq!((dec.desired, dec.reason), (2, DecisionReason::Sized));
    // Scaling up is never held.
    let mut fresh = Decider::new(DecisionParams {
        scale_down_cooldown: Duration::from_secs(120),
        ..params()
    });
    fresh.decide(&input(at(0), 10, 1.0, 1.0));
    assert_eq!(
        fresh.decide(&input(at(1), 10, 90.0, 90.0)).direction,
        Direction::Up
    );
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
    let mut surge = input(t0, 3, 50.0, 20.0);
    surge.expected_rate = Some(20.0);
    let dec = d.decide(&surge);
    assert!(dec.panic);
    // Sized for the surge going on one more interval: 50 + (50 − 20) = 80/s, not 50/s.
    let for_80 = d.needed(80.0, 0.0, 10.0, 3);
    assert!(for_80 > d.needed(50.0, 0.0, 10.0, 3));
    assert_eq!((dec.desired, dec.reason), (for_80, DecisionReason::Panic));
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
    let base = Decider::new(params()).needed(100.0, 0.0, 10.0, 1000);
    let cheap = Decider::new(DecisionParams {
        cost: Some(CostParams {
            pod_cost_per_hour: 1.0,
            violation_cost: 0.01,
        }),
        ..params()
    });
    assert!(cheap.needed(100.0, 0.0, 10.0, 1000) > base);
    let pricey = Decider::new(DecisionParams {
        cost: Some(CostParams {
            pod_cost_per_hour: 1e9,
            violation_cost: 0.01,
        }),
        ..params()
    });
    assert_eq!(pricey.needed(100.0, 0.0, 10.0, 1000), base);
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

#[test]
fn scale_down_waits_for_the_need_to_fall_beyond_the_tolerance() {
    let t0 = Instant::now();
    let mut d = Decider::new(DecisionParams {
        scale_down_tolerance: 0.1,
        max_step_down: None,
        ..params()
    });
    // 20 replicas: a need one lower (19) is noise; two lower (18) is 10 %, still held; three
    // lower (17) is beyond the band and followed.
    let for_need = |n: f64| n * 7.0 - 0.5;
    for (need, want, reason) in [
        (19.0, 20, DecisionReason::Tolerance),
        (18.0, 20, DecisionReason::Tolerance),
        (17.0, 17, DecisionReason::Sized),
    ] {
        let rate = for_need(need);
        assert_eq!(d.needed(rate, 0.0, 10.0, 1000), need as u32);
        let got = d.decide(&input(t0, 20, rate, rate));
        assert_eq!((got.desired, got.reason), (want, reason), "need {need}");
    }
    // At 5 replicas the band is half a replica: a need of 4 is followed at once.
    let got = d.decide(&input(t0, 5, for_need(4.0), for_need(4.0)));
    assert_eq!(got.desired, 4);
    // Scale-up is never held back.
    let got = d.decide(&input(t0, 5, for_need(6.0), for_need(6.0)));
    assert_eq!(got.desired, 6);
}
