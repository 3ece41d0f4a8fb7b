//! How far off the forecasts at one horizon have been: the RMS of the last `window` h-step
//! errors, tracked online, and the one-sided normal quantile that turns it into an upper
//! prediction bound (`forecast + z · σ_h`).

use std::collections::VecDeque;

/// RMS of h-step-ahead forecast errors over a bounded window.
#[derive(Debug, Clone)]
pub struct ErrorTracker {
    horizon: usize,
    window: usize,
    /// Forecasts for the next `horizon` steps, oldest (due now) first.
    pending: VecDeque<f64>,
    squares: VecDeque<f64>,
    sum: f64,
}

impl ErrorTracker {
    /// Tracks `horizon`-step errors over the last `window` (≥ 1) of them.
    pub fn new(horizon: u32, window: usize) -> Self {
        let horizon = horizon.max(1) as usize;
        let window = window.max(1);
        Self {
            horizon,
            window,
            pending: VecDeque::with_capacity(horizon),
            squares: VecDeque::with_capacity(window),
            sum: 0.0,
        }
    }

    /// Records the observation of this step (scoring the forecast made `horizon` steps ago,
    /// if any) and the forecast made now for `horizon` steps ahead (`None`: no forecast yet).
    pub fn record(&mut self, observed: f64, forecast: Option<f64>) {
        if self.pending.len() == self.horizon
            && let Some(made) = self.pending.pop_front()
            && made.is_finite()
            && observed.is_finite()
        {
            if self.squares.len() == self.window
                && let Some(old) = self.squares.pop_front()
            {
                self.sum -= old;
            }
            let square = (observed - made).powi(2);
            self.squares.push_back(square);
            self.sum += square;
        }
        self.pending.push_back(forecast.unwrap_or(f64::NAN));
    }

    /// The scored errors in the window, oldest first, as magnitudes: what a restart keeps
    /// ([`crate::checkpoint`]).
    pub fn recent(&self) -> Vec<f64> {
        self.squares.iter().map(|s| s.max(0.0).sqrt()).collect()
    }

    /// Starts again from `errors` (magnitudes, oldest first, as [`Self::recent`] gives them;
    /// the newest `window` are kept). Forecasts still waiting for their observation are
    /// dropped: they were made for steps before a restart.
    pub fn restore(&mut self, errors: &[f64]) {
        self.pending.clear();
        self.squares.clear();
        let skip = errors.len().saturating_sub(self.window);
        self.squares.extend(errors[skip..].iter().map(|e| e * e));
        self.sum = self.squares.iter().sum();
    }

    /// The RMS error over the window; 0 before any forecast has been scored.
    pub fn rms(&self) -> f64 {
        if self.squares.is_empty() {
            return 0.0;
        }
        // Subtractions can leave a tiny negative sum of squares.
        (self.sum.max(0.0) / self.squares.len() as f64).sqrt()
    }
}

/// z with P(Z > z) = `p` for a standard normal Z (`p` in (0, 1)); by bisection on the upper
/// tail, whose complementary error function uses Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7).
pub fn upper_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    let (mut lo, mut hi) = (-10.0_f64, 10.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if upper_tail(mid) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// P(Z > z).
fn upper_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * erfc
    } else {
        1.0 - 0.5 * erfc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_each_forecast_against_the_observation_horizon_steps_later() {
        let mut t = ErrorTracker::new(2, 10);
        // Forecasts made at steps 0 and 1 are due at steps 2 and 3.
        t.record(10.0, Some(12.0));
        t.record(10.0, Some(10.0));
        assert_eq!(t.rms(), 0.0, "nothing due yet");
        t.record(15.0, Some(0.0)); // 15 vs 12: error 3
        assert!((t.rms() - 3.0).abs() < 1e-12);
        t.record(6.0, None); // 6 vs 10: error 4
        assert!((t.rms() - (12.5_f64).sqrt()).abs() < 1e-12);
        t.record(0.0, None); // 0 vs 0: error 0
        assert!((t.rms() - (25.0_f64 / 3.0).sqrt()).abs() < 1e-12);
        t.record(100.0, None); // no forecast was made: not scored
        assert!((t.rms() - (25.0_f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn forgets_errors_older_than_the_window() {
        let mut t = ErrorTracker::new(1, 2);
        t.record(0.0, Some(0.0));
        t.record(10.0, Some(0.0)); // error 10
        t.record(1.0, Some(0.0)); // error 1
        t.record(1.0, Some(0.0)); // error 1; the 10 falls out
        assert!((t.rms() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn restores_what_it_gave_keeping_the_newest_window() {
        let mut t = ErrorTracker::new(1, 3);
        t.record(0.0, Some(1.0));
        for x in [3.0, 4.0, 12.0] {
            t.record(x, Some(1.0)); // errors 1, 2, 3, 11: the 1 falls out
        }
        assert_eq!(t.recent(), vec![2.0, 3.0, 11.0]);
        let mut again = ErrorTracker::new(1, 3);
        again.restore(&t.recent());
        assert!((again.rms() - t.rms()).abs() < 1e-12);
        // A longer list keeps its newest three; nothing is pending after a restore.
        again.restore(&[100.0, 3.0, 4.0, 12.0]);
        assert_eq!(again.recent(), vec![3.0, 4.0, 12.0]);
        again.record(50.0, Some(0.0));
        assert_eq!(again.recent(), vec![3.0, 4.0, 12.0], "no forecast was due");
    }

    #[test]
    fn upper_quantiles_match_the_normal_table() {
        for (p, z) in [
            (0.5, 0.0),
            (0.05, 1.644_854),
            (0.01, 2.326_348),
            (0.16, 0.994_458),
        ] {
            assert!(
                (upper_quantile(p) - z).abs() < 1e-4,
                "p {p}: {}",
                upper_quantile(p)
            );
        }
        assert!(upper_quantile(0.95) < -1.64);
    }
}
