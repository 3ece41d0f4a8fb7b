//! The simulator against queueing theory and against itself: M/M/k waiting probabilities on a
//! constant load, exact accounting for static policies, determinism, and the HPA's scale-up
//! rate limits visible in a simulated flash crowd.

use std::time::Duration;

use autoscaler::queueing::{Load, erlang_c};
use autoscaler::simulate::{ServiceTime, SimParams, Summary, Workload, simulate};
use autoscaler::{PolicySpec, Tuning};

fn params(sla: Duration, service_rate: f64) -> SimParams {
    SimParams {
        interval: Duration::from_secs(15),
        cold_start: Duration::from_secs(30),
        sla_latency: sla,
        service: ServiceTime::Exponential { rate: service_rate },
        seed: 7,
        queue_capacity: 1_000_000,
        initial_replicas: 1,
    }
}

#[test]
fn constant_load_matches_the_mmk_waiting_probability() {
    // λ = 8/s, μ = 1/s, k = 10: C = 0.409, P(wait > 0.5 s) = C·e^(−(10 − 8)·0.5) = 0.150.
    // One 60,000 s run has a relative spread of about 3.5 % (the queue is autocorrelated);
    // six seeds pooled bring it to about 1.4 %.
    let workload = Workload::from_rates(vec![8.0; 60_000]);
    let tuning = Tuning::default();
    for (sla, expected) in [
        (0.0, erlang_c(10, 8.0)),
        (0.5, Load::new(8.0, 1.0).wait_probability(10, 0.5)),
    ] {
        let (mut waited, mut requests, mut latency) = (0u64, 0u64, 0.0);
        for seed in 1..=6 {
            let p = SimParams {
                seed,
                ..params(Duration::from_secs_f64(sla), 1.0)
            };
            let result = &simulate(&workload, &[PolicySpec::Static(10)], &tuning, &p)[0];
            waited += result.sla_violations;
            requests += result.requests;
            latency += Summary::new(result).latency_ms.mean / 1000.0 / 6.0;
        }
        let measured = waited as f64 / requests as f64;
        let error = (measured - expected).abs() / expected;
        assert!(
            error < 0.05,
            "t={sla}: measured {measured:.4}, M/M/10 says {expected:.4}"
        );
        // Mean latency: W = C/(kμ − λ) + 1/μ.
        let theory = erlang_c(10, 8.0) / 2.0 + 1.0;
        assert!(
            (latency - theory).abs() / theory < 0.03,
            "mean {latency} vs {theory}"
        );
    }
}

#[test]
fn static_policies_pay_exactly_their_replicas() {
    let workload = Workload::from_rates(vec![5.0; 3_600]);
    let p = params(Duration::from_millis(500), 10.0);
    let results = simulate(
        &workload,
        &[PolicySpec::Static(3), PolicySpec::Static(1)],
        &Tuning::default(),
        &p,
    );
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b;
    assert!(
        close(results[0].pod_seconds, 3.0 * 3_600.0),
        "{}",
        results[0].pod_seconds
    );
    assert_eq!(results[0].scale_events, 0);
    assert!(
        close(results[1].pod_seconds, 3_600.0),
        "{}",
        results[1].pod_seconds
    );
    // Same seed, same requests for every policy.
    assert_eq!(results[0].requests, results[1].requests);
    let expected = 5.0 * 3_600.0;
    assert!((results[0].requests as f64 - expected).abs() < 4.0 * expected.sqrt());
}

#[test]
fn a_full_queue_refuses_requests() {
    // 20/s into one replica serving 10/s: half are refused once 100 are waiting.
    let workload = Workload::from_rates(vec![20.0; 600]);
    let p = SimParams {
        queue_capacity: 100,
        ..params(Duration::from_millis(500), 10.0)
    };
    let r = &simulate(&workload, &[PolicySpec::Static(1)], &Tuning::default(), &p)[0];
    let refused = r.rejected as f64 / r.requests as f64;
    assert!((0.4..0.6).contains(&refused), "refused {refused}");
}

#[test]
fn results_are_deterministic_for_a_seed() {
    let workload = autoscaler::simulate::Shape::Spike.generate(3);
    let tuning = Tuning::default();
    let p = params(Duration::from_millis(500), 10.0);
    let policies = [PolicySpec::Predictive, PolicySpec::Hpa, PolicySpec::Queue];
    let a: Vec<Summary> = simulate(&workload, &policies, &tuning, &p)
        .iter()
        .map(Summary::new)
        .collect();
    let b: Vec<Summary> = simulate(&workload, &policies, &tuning, &p)
        .iter()
        .map(Summary::new)
        .collect();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            serde_json::to_value(x).unwrap(),
            serde_json::to_value(y).unwrap()
        );
    }
    let other = SimParams { seed: 8, ..p };
    let c = Summary::new(&simulate(&workload, &[PolicySpec::Predictive], &tuning, &other)[0]);
    assert_ne!(c.requests, a[0].requests);
}

#[test]
fn the_simulated_hpa_respects_its_default_scale_up_rate() {
    // From 2 replicas, a step to 20× the load: the HPA may at most double or add 4 per 15 s.
    let mut rates = vec![10.0; 300];
    rates.extend(vec![200.0; 900]);
    let workload = Workload::from_rates(rates);
    let tuning = Tuning::default();
    let p = SimParams {
        initial_replicas: 2,
        ..params(Duration::from_millis(500), 10.0)
    };
    let r = &simulate(&workload, &[PolicySpec::Hpa], &tuning, &p)[0];
    let ups: Vec<(f64, u32)> = r.replicas.clone();
    assert!(ups.len() > 2, "the HPA scaled: {ups:?}");
    for w in ups.windows(2) {
        let ((t0, from), (t1, to)) = (w[0], w[1]);
        if to > from {
            assert!(to <= (2 * from).max(from + 4), "{from} → {to} at {t1}");
            assert!(t1 - t0 >= 15.0);
        }
    }
    assert!(
        r.peak_replicas >= 20,
        "200/s at 10/s per replica needs ≥ 20: {}",
        r.peak_replicas
    );
}
