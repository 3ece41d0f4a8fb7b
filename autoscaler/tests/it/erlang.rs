//! Erlang C against an independent implementation: the textbook sum evaluated term by term in
//! log space (log-sum-exp), with ln k! accumulated directly. Different algorithm, different
//! rounding; agreement to 1e-9 over a grid up to 10,000 servers.

use autoscaler::queueing::{Load, erlang_c};

/// C(k, a) = T / (S + T) with S = Σ_{i<k} a^i/i! and T = a^k/k! · k/(k − a), all in logs.
fn reference_erlang_c(k: u32, a: f64) -> f64 {
    assert!(a > 0.0 && a < f64::from(k));
    let ln_a = a.ln();
    let mut ln_terms = Vec::with_capacity(k as usize + 1);
    let mut ln_factorial = 0.0f64;
    for i in 0..k {
        if i > 0 {
            ln_factorial += f64::from(i).ln();
        }
        ln_terms.push(f64::from(i) * ln_a - ln_factorial);
    }
    ln_factorial += f64::from(k).ln();
    let ln_t = f64::from(k) * ln_a - ln_factorial + (f64::from(k) / (f64::from(k) - a)).ln();
    let max = ln_terms.iter().copied().fold(ln_t, f64::max);
    // Kahan summation of exp(term − max).
    let (mut sum, mut carry) = (0.0f64, 0.0f64);
    for x in ln_terms.iter().map(|t| (t - max).exp()) {
        let y = x - carry;
        let s = sum + y;
        carry = (s - sum) - y;
        sum = s;
    }
    let t = (ln_t - max).exp();
    t / (sum + t)
}

#[test]
fn matches_an_independent_implementation_up_to_10000_servers() {
    let mut worst: f64 = 0.0;
    let mut points = 0;
    for k in [
        1u32, 2, 3, 5, 8, 13, 50, 100, 171, 172, 500, 1000, 2500, 5000, 10_000,
    ] {
        for rho in [0.01, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999] {
            let a = rho * f64::from(k);
            let ours = erlang_c(k, a);
            let reference = reference_erlang_c(k, a);
            let diff = (ours - reference).abs();
            assert!(diff <= 1e-9, "k={k} a={a}: {ours} vs {reference}");
            if reference > 1e-300 {
                worst = worst.max(diff / reference);
            }
            points += 1;
        }
    }
    // Relative agreement too where the value is representable.
    assert!(
        worst < 1e-9,
        "worst relative difference {worst:e} over {points} points"
    );
}

#[test]
fn the_factorial_form_breaks_where_ours_does_not() {
    // a^k / k! in f64: inf/inf past k ≈ 170.
    let naive = |k: u32, a: f64| {
        let factorial: f64 = (1..=k).map(f64::from).product();
        a.powi(k as i32) / factorial
    };
    assert!(naive(200, 180.0).is_nan());
    let c = erlang_c(200, 180.0);
    assert!((c - reference_erlang_c(200, 180.0)).abs() < 1e-12);
    assert!(c > 0.0 && c < 1.0);
}

#[test]
fn required_servers_meets_the_target_and_one_fewer_does_not() {
    for (lambda, mu, t, target) in [
        (95.0, 10.0, 0.5, 0.05),
        (9_500.0, 1.0, 0.0, 0.2),
        (0.5, 10.0, 0.0, 0.01),
        (5_000.0, 2.0, 0.1, 0.001),
    ] {
        let load = Load::new(lambda, mu);
        let s = load.required_servers(t, target, 100_000);
        assert!(s.feasible && s.wait_probability <= target);
        let below = s.servers - 1;
        let stable = f64::from(below) > lambda / mu;
        assert!(
            !stable || load.wait_probability(below, t) > target,
            "λ={lambda}: {below} servers would do"
        );
    }
}
