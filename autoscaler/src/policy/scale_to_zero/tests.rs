use std::time::{Duration, Instant};

use super::*;
use crate::decision::Direction;

const AFTER: Duration = Duration::from_secs(60);

fn telemetry(now: Instant, queue: f64, in_flight: f64, rate: f64) -> Telemetry {
    Telemetry {
        queue_length: Some(queue),
        in_flight: Some(in_flight),
        arrival_rate: Some(rate),
        ..Telemetry::empty(now)
    }
}

fn obs(now: Instant, current: u32, t: Option<Telemetry>) -> Observation {
    Observation {
        now,
        current_replicas: current,
        telemetry: t,
        fresh: true,
        scale_down_allowed: true,
    }
}

fn rec(current: u32, replicas: u32) -> Recommendation {
    plain(current, replicas, "sized")
}

#[test]
fn any_work_at_zero_activates() {
    let now = Instant::now();
    let cases = [
        (1.0, 0.0, 0.0, 0, 1),
        (0.0, 1.0, 0.0, 0, 1),
        (0.0, 0.0, 0.2, 0, 1),
        // The policy asked for more: the activation keeps its size.
        (40.0, 0.0, 5.0, 3, 3),
    ];
    for (queue, in_flight, rate, asked, want) in cases {
        let mut gate = ScaleToZero::new(0, AFTER);
        let t = telemetry(now, queue, in_flight, rate);
        let r = gate.apply(&obs(now, 0, Some(t)), rec(0, asked));
        assert_eq!(
            (r.replicas, r.reason, r.direction),
            (want, ACTIVATION, Direction::Up),
            "{queue} {in_flight} {rate}"
        );
    }
}

#[test]
fn no_work_at_zero_stays_at_zero() {
    let now = Instant::now();
    let mut gate = ScaleToZero::new(0, AFTER);
    // A forecast's tail may still ask for a replica: with nothing to serve, none starts.
    let r = gate.apply(&obs(now, 0, Some(telemetry(now, 0.0, 0.0, 0.0))), rec(0, 1));
    assert_eq!((r.replicas, r.reason), (0, IDLE));
}

#[test]
fn scales_to_zero_only_after_the_idle_period() {
    let start = Instant::now();
    let mut gate = ScaleToZero::new(0, AFTER);
    let idle = |at| obs(at, 1, Some(telemetry(at, 0.0, 0.0, 0.0)));
    // The policy wants zero at once; the gate keeps one replica for the idle period.
    for s in [0, 30, 59] {
        let r = gate.apply(&idle(start + Duration::from_secs(s)), rec(1, 0));
        assert_eq!((r.replicas, r.reason), (1, IDLE_WINDOW), "at {s} s");
    }
    let r = gate.apply(&idle(start + AFTER), rec(1, 1));
    assert_eq!(
        (r.replicas, r.reason, r.direction),
        (0, SCALE_TO_ZERO, Direction::Down)
    );
}

#[test]
fn work_restarts_the_idle_period() {
    let start = Instant::now();
    let mut gate = ScaleToZero::new(0, AFTER);
    let at = |s| start + Duration::from_secs(s);
    let idle = |s| obs(at(s), 2, Some(telemetry(at(s), 0.0, 0.0, 0.0)));
    assert_eq!(gate.apply(&idle(0), rec(2, 1)).replicas, 1);
    // One request at 50 s: the idle period starts again after it.
    let busy = obs(at(50), 2, Some(telemetry(at(50), 0.0, 1.0, 0.0)));
    assert_eq!(gate.apply(&busy, rec(2, 0)).replicas, 1);
    assert_eq!(gate.apply(&idle(70), rec(2, 0)).reason, IDLE_WINDOW);
    assert_eq!(gate.apply(&idle(109), rec(2, 0)).replicas, 1);
    assert_eq!(gate.apply(&idle(130), rec(2, 1)).replicas, 0);
}

#[test]
fn a_minimum_above_zero_or_no_telemetry_changes_nothing() {
    let now = Instant::now();
    let mut warm = ScaleToZero::new(1, AFTER);
    assert!(!warm.enabled());
    let t = Some(telemetry(now, 5.0, 0.0, 1.0));
    assert_eq!(warm.apply(&obs(now, 0, t), rec(0, 0)), rec(0, 0));
    let mut gate = ScaleToZero::new(0, AFTER);
    assert_eq!(gate.apply(&obs(now, 0, None), rec(0, 0)), rec(0, 0));
    assert_eq!(gate.apply(&obs(now, 3, None), rec(3, 3)), rec(3, 3));
}

/// Through [`Policy`]: `predictive` and `queue` wake from zero on queued work and return to
/// zero after the idle period; `hpa` keeps its floor of 1 whatever the tuning says.
#[test]
fn policies_with_a_minimum_of_zero() {
    use crate::policy::{Policy, PolicySpec};
    use crate::tuning::Tuning;

    let mut tuning = Tuning::default();
    tuning.decision.min_replicas = 0;
    tuning.scale_to_zero_after = AFTER;
    let interval = Duration::from_secs(15);
    let start = Instant::now();
    for spec in [PolicySpec::Predictive, PolicySpec::Queue] {
        let mut policy = Policy::new(spec, &tuning, interval);
        policy.prime(start, 0);
        let queued = obs(start, 0, Some(telemetry(start, 4.0, 0.0, 0.0)));
        let r = policy.decide(&queued, &tuning);
        assert_eq!((r.replicas, r.reason), (1, ACTIVATION), "{spec}");
        // Served and idle from 15 s on: one replica stays for the idle period, then none.
        let idle = |s| {
            let at = start + Duration::from_secs(s);
            obs(at, 1, Some(telemetry(at, 0.0, 0.0, 0.0)))
        };
        assert_eq!(policy.decide(&idle(15), &tuning).replicas, 1, "{spec}");
        assert_eq!(policy.decide(&idle(60), &tuning).replicas, 1, "{spec}");
        let r = policy.decide(&idle(75), &tuning);
        assert_eq!((r.replicas, r.reason), (0, SCALE_TO_ZERO), "{spec}");
    }
    let mut hpa = Policy::new(PolicySpec::Hpa, &tuning, interval);
    hpa.prime(start, 1);
    let at = start + Duration::from_secs(3600);
    let unused = Telemetry {
        utilisation: Some(0.0),
        ..telemetry(at, 0.0, 0.0, 0.0)
    };
    let r = hpa.decide(&obs(at, 1, Some(unused)), &tuning);
    // Idle for an hour at zero utilisation: the HPA's own floor of 1 holds.
    assert_eq!(r.replicas, 1, "{r:?}");
}
