//! Reshaping a workload: `--duration-scale` stretches or compresses it in time, keeping its
//! rates; `--rate-scale` multiplies its rates, keeping its timing (a slower machine runs the
//! same shape at a load it can carry).
//!
//! The workload is a step function of time (rate `r[i]` during second `i`). Scaled in time by
//! `f`, it lasts `round(len × f)` seconds and second `j` gets the mean rate of the original
//! over `[j/f, (j+1)/f)`, rounded to a whole number. The shape and the load level stay; the
//! total number of requests scales by about `f`. Scaled in rate by `g`, second `i` gets
//! `round(r[i] × g)`. Both are the identity at 1.

use load_tester::Workload;

use crate::error::Error;

/// Largest accepted factor: a 90-second workload becomes two and a half hours.
pub const MAX_FACTOR: f64 = 100.0;

/// The workload scaled in time by `factor` (`> 0`, at most [`MAX_FACTOR`]).
pub fn scale_duration(workload: &Workload, factor: f64) -> Result<Workload, Error> {
    check_factor("duration-scale", factor)?;
    let rates = workload.rates();
    let len = rates.len();
    let scaled_len = ((len as f64 * factor).round() as usize).max(1);
    let numbers: Vec<f64> = (0..scaled_len)
        .map(|j| {
            // The original time span that second `j` covers, clipped to the workload.
            let from = j as f64 / factor;
            let to = ((j + 1) as f64 / factor).min(len as f64);
            mean_rate(rates, from, to).round()
        })
        .collect();
    rebuild("duration-scale", factor, &numbers)
}

/// The workload with every rate multiplied by `factor` (`> 0`, at most [`MAX_FACTOR`]) and
/// rounded.
pub fn scale_rates(workload: &Workload, factor: f64) -> Result<Workload, Error> {
    check_factor("rate-scale", factor)?;
    let numbers: Vec<f64> = workload
        .rates()
        .iter()
        .map(|&r| (f64::from(r) * factor).round())
        .collect();
    rebuild("rate-scale", factor, &numbers)
}

fn check_factor(flag: &'static str, factor: f64) -> Result<(), Error> {
    if factor.is_finite() && factor > 0.0 && factor <= MAX_FACTOR {
        Ok(())
    } else {
        Err(Error::invalid(
            flag,
            format!("must be in (0, {MAX_FACTOR}], got {factor}"),
        ))
    }
}

fn rebuild(flag: &'static str, factor: f64, numbers: &[f64]) -> Result<Workload, Error> {
    Workload::from_numbers(numbers, format!("workload scaled by --{flag}"))
        .map_err(|err| Error::invalid(flag, format!("{factor} makes the workload invalid: {err}")))
}

/// Mean of the step function `rates` over `[from, to)`; 0 for an empty span.
fn mean_rate(rates: &[u32], from: f64, to: f64) -> f64 {
    if to <= from {
        return 0.0;
    }
    let first = from.floor() as usize;
    let mut area = 0.0;
    for (i, &rate) in rates.iter().enumerate().skip(first) {
        let (start, end) = (i as f64, (i + 1) as f64);
        if start >= to {
            break;
        }
        let overlap = end.min(to) - start.max(from);
        if overlap > 0.0 {
            area += f64::from(rate) * overlap;
        }
    }
    area / (to - from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn workload(rates: &[u32]) -> Workload {
        let numbers: Vec<f64> = rates.iter().map(|&r| f64::from(r)).collect();
        Workload::from_numbers(&numbers, "test").unwrap()
    }

    #[test]
    fn known_cases() {
        let rate_cases: &[(&[u32], f64, &[u32])] = &[
            (&[2, 30, 2], 0.5, &[1, 15, 1]),
            (&[3, 0, 7], 2.0, &[6, 0, 14]),
        ];
        for (rates, factor, want) in rate_cases {
            let got = scale_rates(&workload(rates), *factor).unwrap();
            assert_eq!(got.rates(), *want, "{rates:?} × {factor}");
        }
        let cases: &[(&[u32], f64, &[u32])] = &[
            (&[1, 2, 3], 1.0, &[1, 2, 3]),
            (&[1, 2, 3], 2.0, &[1, 1, 2, 2, 3, 3]),
            (&[2, 4, 6, 8], 0.5, &[3, 7]),
            (&[10, 0, 0, 10], 0.25, &[5]),
            (&[4], 1.5, &[4, 4]),
            (&[0, 9, 0], 1.0 / 3.0, &[3]),
        ];
        for (rates, factor, want) in cases {
            let got = scale_duration(&workload(rates), *factor).unwrap();
            assert_eq!(got.rates(), *want, "{rates:?} × {factor}");
        }
    }

    #[test]
    fn bad_factors_are_refused_with_the_flag_named() {
        for factor in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_FACTOR * 2.0] {
            let err = scale_duration(&workload(&[1]), factor).unwrap_err();
            assert!(err.to_string().contains("--duration-scale"), "{err}");
            let err = scale_rates(&workload(&[1]), factor).unwrap_err();
            assert!(err.to_string().contains("--rate-scale"), "{err}");
        }
        // Compressing a sparse workload can average every second down to zero, and so can
        // scaling small rates down.
        assert!(scale_duration(&workload(&[1, 0, 0, 0, 0, 0]), 1.0 / 6.0).is_err());
        assert!(scale_rates(&workload(&[1, 1]), 0.2).is_err());
        // Scaling up past the per-second limit is refused too.
        assert!(scale_rates(&workload(&[60_000]), 2.0).is_err());
    }

    proptest! {
        #[test]
        fn keeps_the_level_and_scales_the_length(
            rates in proptest::collection::vec(1u32..200, 1..120),
            factor in 0.2f64..5.0,
        ) {
            let original = workload(&rates);
            let scaled = scale_duration(&original, factor).unwrap();
            let len = scaled.seconds();
            prop_assert_eq!(len, ((rates.len() as f64 * factor).round() as usize).max(1));
            // Means of the rates, rounded: never above the peak nor below the lowest rate.
            let lowest = *rates.iter().min().unwrap();
            prop_assert!(scaled.peak() <= original.peak());
            prop_assert!(scaled.rates()[..len - 1].iter().all(|&r| r >= lowest));
            // The total scales by the factor, up to rounding (half a request a second) and
            // the last second's clipping.
            let want = original.total() as f64 * factor;
            let slack = len as f64 * 0.5 + f64::from(original.peak()) * (factor + 1.0);
            prop_assert!((scaled.total() as f64 - want).abs() <= slack,
                "total {} want {want} slack {slack}", scaled.total());
        }

        #[test]
        fn factor_one_is_the_identity(rates in proptest::collection::vec(0u32..1000, 1..200)) {
            prop_assume!(rates.iter().any(|&r| r > 0));
            let original = workload(&rates);
            prop_assert_eq!(scale_duration(&original, 1.0).unwrap(), original.clone());
            prop_assert_eq!(scale_rates(&original, 1.0).unwrap(), original);
        }

        #[test]
        fn rate_scale_keeps_the_timing(
            rates in proptest::collection::vec(1u32..500, 1..120),
            factor in 0.5f64..4.0,
        ) {
            let scaled = scale_rates(&workload(&rates), factor).unwrap();
            prop_assert_eq!(scaled.seconds(), rates.len());
            for (&before, &after) in rates.iter().zip(scaled.rates()) {
                prop_assert!((f64::from(after) - f64::from(before) * factor).abs() <= 0.5);
            }
        }
    }
}
