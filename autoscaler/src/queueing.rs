//! M/M/k queueing: Erlang B and C, the probability that a request waits longer than the SLA, and
//! the smallest replica count that keeps that probability under a target.
//!
//! The textbook form `(a^k / k!) / Σ a^i / i!` overflows past k ≈ 170 in `f64` and turns into
//! `inf / inf = NaN` without a word. Everything here goes through the Erlang-B recursion
//! `B(n) = a·B(n−1) / (n + a·B(n−1))`, which only ever divides numbers in `[0, 1]` and is
//! numerically stable. Every function is total: any finite (or even non-finite) input returns a
//! probability in `[0, 1]` or a replica count, never NaN and never a panic.

/// Erlang-B blocking probability for `servers` servers and an offered load of `offered_load`
/// Erlangs (`λ/μ`).
///
/// Cost is O(√a) steps whatever `k` ([`recursion_start`] skips the terms below `a` that
/// cannot matter; past `a`, B underflows to 0 within about 40√a + 200 steps).
pub fn erlang_b(servers: u32, offered_load: f64) -> f64 {
    let a = offered_load;
    if servers == 0 || a.is_nan() || a == f64::INFINITY {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    let mut b = 1.0;
    // An exclusive range of u32 (n = m + 1 ≤ servers): RangeInclusive costs a check per step.
    for m in recursion_start(servers, a)..servers {
        let ab = a * b;
        b = ab / (f64::from(m + 1) + ab);
        if b == 0.0 {
            // Underflowed: zero from here on. Bounds the loop at O(√a) past a for any k.
            break;
        }
    }
    b
}

/// Where the Erlang-B recursion may start with `B(n0) = 1` instead of at `B(0) = 1`.
///
/// In terms of `I(n) = 1/B(n) = 1 + (n/a)·I(n−1)`, starting at `n0` with `I(n0) = 1` drops the
/// terms `Π_{m=n0+1..k} (m/a) · (I(n0) − 1)`. For `n0 < a`, `I(n0) − 1 ≤ n0/(a − n0)`, and the
/// product over the `L` factors below `min(k, a)` is at most `exp(−L(L−1)/2a)` and at most
/// `(min(k, a)/a)^L`; the factors above `a` are bounded by the kept sum itself. Choosing `L` so
/// that the product is below `e^−E` with `E = 60 + ln a` makes the relative error of `B(k)`
/// smaller than `e^−60 ≈ 1e-26`: far below `f64` resolution, for any `a`.
fn recursion_start(servers: u32, a: f64) -> u32 {
    let anchor = f64::from(servers).min(a.floor());
    if anchor < 1.0 {
        return 0;
    }
    let budget = 60.0 + a.max(1.0).ln();
    let by_spread = (2.0 * a * budget).sqrt() + 2.0;
    let ratio = anchor / a;
    let by_ratio = if ratio < 1.0 {
        budget / -ratio.ln() + 2.0
    } else {
        f64::INFINITY
    };
    let lead = by_spread.min(by_ratio).ceil();
    if lead >= anchor {
        0
    } else {
        // anchor ≤ servers, so the difference fits in u32.
        (anchor - lead) as u32
    }
}

/// Erlang-C: the probability that an arriving request has to wait (all servers busy), for
/// `servers` servers and offered load `offered_load` Erlangs. 1 when the queue is unstable
/// (`a ≥ k`).
pub fn erlang_c(servers: u32, offered_load: f64) -> f64 {
    let a = offered_load;
    if a.is_nan() || servers == 0 || a >= f64::from(servers) {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    erlang_c_from_b(servers, a, erlang_b(servers, a))
}

/// `C = B / (1 − ρ(1 − B))` with `ρ = a/k < 1`: the denominator stays in `(1 − ρ, 1]`.
fn erlang_c_from_b(servers: u32, a: f64, b: f64) -> f64 {
    let rho = a / f64::from(servers);
    let c = b / (1.0 - rho * (1.0 - b));
    if c.is_nan() { 1.0 } else { c.clamp(0.0, 1.0) }
}

/// The parameters of one M/M/k sizing question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Arrival rate λ, requests per second.
    pub arrival_rate: f64,
    /// Service rate μ of one replica, requests per second.
    pub service_rate: f64,
}

impl Load {
    pub fn new(arrival_rate: f64, service_rate: f64) -> Self {
        Self {
            arrival_rate,
            service_rate,
        }
    }

    /// Offered load `a = λ/μ` in Erlangs; infinite when μ is not positive and λ is.
    pub fn offered(&self) -> f64 {
        if self.arrival_rate.is_nan() || self.service_rate.is_nan() {
            return f64::INFINITY;
        }
        if self.arrival_rate <= 0.0 {
            return 0.0;
        }
        if self.service_rate <= 0.0 {
            return f64::INFINITY;
        }
        self.arrival_rate / self.service_rate
    }

    /// P(wait > `threshold` seconds) = `C · exp(−(kμ − λ)·t)` for `servers` replicas.
    pub fn wait_probability(&self, servers: u32, threshold: f64) -> f64 {
        let a = self.offered();
        if a == 0.0 {
            return 0.0;
        }
        if servers == 0 || a >= f64::from(servers) {
            return 1.0;
        }
        self.tail(servers, erlang_c(servers, a), threshold)
    }

    /// `C · exp(−(kμ − λ)t)`, given C. Non-finite intermediate values resolve conservatively.
    fn tail(&self, servers: u32, c: f64, threshold: f64) -> f64 {
        let t = if threshold.is_nan() {
            0.0
        } else {
            threshold.max(0.0)
        };
        if t == 0.0 {
            return c;
        }
        let spare = f64::from(servers) * self.service_rate - self.arrival_rate;
        let p = c * (-(spare * t)).exp();
        if p.is_nan() { c } else { p.clamp(0.0, 1.0) }
    }

    /// The smallest replica count `k ≤ limit` with P(wait > `threshold`) ≤ `target`, searching
    /// upwards from the stability bound `floor(λ/μ) + 1`.
    pub fn required_servers(&self, threshold: f64, target: f64, limit: u32) -> Sizing {
        let a = self.offered();
        if a == 0.0 {
            return Sizing {
                servers: 0,
                wait_probability: 0.0,
                feasible: true,
            };
        }
        let floor = a.floor() + 1.0;
        if !floor.is_finite() || floor > f64::from(limit) {
            return Sizing {
                servers: limit,
                wait_probability: self.wait_probability(limit, threshold),
                feasible: false,
            };
        }
        // floor ≤ limit, so it fits in u32.
        let mut k = floor as u32;
        let mut b = erlang_b(k, a);
        loop {
            let p = self.tail(k, erlang_c_from_b(k, a, b), threshold);
            // p = 0 cannot improve: stop even for a target no k can meet.
            if p <= target || p == 0.0 || k == limit {
                return Sizing {
                    servers: k,
                    wait_probability: p,
                    feasible: p <= target,
                };
            }
            k += 1;
            let ab = a * b;
            b = ab / (f64::from(k) + ab);
        }
    }
}

/// The answer to a sizing question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizing {
    /// Replicas needed (or `limit` when no count up to it meets the target).
    pub servers: u32,
    /// P(wait > threshold) at `servers`.
    pub wait_probability: f64,
    /// Whether `servers` meets the target.
    pub feasible: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn textbook_values() {
        // M/M/1: C = ρ. M/M/2 at ρ = 0.5: C = 1/3. The values for larger k come from the
        // textbook formula evaluated in exact rational arithmetic.
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-15);
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-15);
        assert!((erlang_b(2, 1.0) - 0.2).abs() < 1e-15);
        assert!((erlang_c(10, 8.0) - 0.409_180_150_796_443_5).abs() < 1e-14);
        assert!((erlang_c(100, 90.0) - 0.216_940_480_906_366_4).abs() < 1e-14);
        assert!((erlang_c(1000, 950.0) - 0.068_253_415_377_141_43).abs() < 1e-13);
    }

    #[test]
    fn degenerate_inputs_are_probabilities() {
        for &a in &[
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::MAX,
            1e300,
            f64::MIN_POSITIVE,
        ] {
            for &k in &[0, 1, 2, 10_000, u32::MAX] {
                for p in [erlang_b(k, a), erlang_c(k, a)] {
                    assert!((0.0..=1.0).contains(&p), "k={k} a={a} -> {p}");
                }
            }
        }
        let idle = Load::new(0.0, 0.0);
        assert_eq!(idle.required_servers(1.0, 0.01, 100).servers, 0);
        let broken = Load::new(10.0, 0.0);
        let s = broken.required_servers(1.0, 0.01, 100);
        assert_eq!(
            (s.servers, s.feasible, s.wait_probability),
            (100, false, 1.0)
        );
    }

    #[test]
    fn sizing_starts_at_the_stability_bound() {
        // A target of 1 is met by any stable system: exactly floor(a) + 1 servers.
        let s = Load::new(95.0, 10.0).required_servers(0.5, 1.0, 1000);
        assert_eq!(s.servers, 10);
        // k = 10, a = 8, t = 0: C = 0.409 > 0.2, so more than 10 servers are needed.
        let s = Load::new(8.0, 1.0).required_servers(0.0, 0.2, 1000);
        assert!(s.feasible);
        assert!(erlang_c(s.servers - 1, 8.0) > 0.2 && erlang_c(s.servers, 8.0) <= 0.2);
    }

    proptest! {
        #[test]
        fn wait_probability_decreases_in_k(a in 0.01f64..5_000.0, t in 0.0f64..10.0, extra in 1u32..200) {
            let load = Load::new(a, 1.0);
            let k = a.floor() as u32 + extra;
            let p = load.wait_probability(k, t);
            let q = load.wait_probability(k + 1, t);
            prop_assert!(q <= p, "k={k} p={p} q={q}");
            prop_assert!(!p.is_nan() && (0.0..=1.0).contains(&p));
        }

        #[test]
        fn required_servers_is_monotone_in_lambda(l1 in 0.0f64..2_000.0, dl in 0.0f64..50.0, mu in 0.1f64..50.0, t in 0.0f64..5.0, target in 1e-6f64..1.0) {
            let small = Load::new(l1, mu).required_servers(t, target, 100_000);
            let large = Load::new(l1 + dl, mu).required_servers(t, target, 100_000);
            prop_assert!(small.servers <= large.servers);
            prop_assert!(small.wait_probability <= target && large.wait_probability <= target);
        }

        #[test]
        fn never_nan(k in any::<u16>(), a in proptest::num::f64::ANY, l in proptest::num::f64::ANY, mu in proptest::num::f64::ANY, t in proptest::num::f64::ANY) {
            prop_assert!(!erlang_b(u32::from(k), a).is_nan());
            prop_assert!(!erlang_c(u32::from(k), a).is_nan());
            let load = Load::new(l, mu);
            prop_assert!(!load.wait_probability(u32::from(k), t).is_nan());
            let s = load.required_servers(t, 0.05, 2_000);
            prop_assert!(!s.wait_probability.is_nan() && s.servers <= 2_000);
        }
    }
}
