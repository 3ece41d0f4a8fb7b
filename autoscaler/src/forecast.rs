//! Arrival-rate forecasting: Holt's linear trend (optionally damped), and additive Holt-Winters
//! once two full seasons have been seen.
//!
//! One observation per decision interval. The forecaster keeps O(1) state for Holt and one
//! value per step of the season for Holt-Winters; the raw history it keeps to initialise the
//! seasonal model is bounded by `history_limit`. [`ForecasterState`] (in `snapshot`) is that
//! state as data, saved across restarts by [`crate::checkpoint`].

mod errors;
mod snapshot;

use std::collections::VecDeque;

pub use errors::{ErrorTracker, upper_quantile};
pub use snapshot::ForecasterState;

/// Which model to fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelKind {
    /// Level + trend.
    Holt,
    /// Level + trend + additive season of `period` steps (Holt until two seasons are seen).
    HoltWinters { period: usize },
}

/// Smoothing parameters, validated by the configuration (all in `(0, 1]`, damping in `(0, 1]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastParams {
    pub kind: ModelKind,
    /// Level smoothing α.
    pub alpha: f64,
    /// Trend smoothing β.
    pub beta: f64,
    /// Season smoothing γ (Holt-Winters only).
    pub gamma: f64,
    /// Trend damping φ; 1 is the undamped linear trend.
    pub damping: f64,
    /// Most raw observations kept (at least `2 × period` for Holt-Winters).
    pub history_limit: usize,
}

impl Default for ForecastParams {
    fn default() -> Self {
        Self {
            kind: ModelKind::Holt,
            alpha: 0.5,
            beta: 0.3,
            gamma: 0.1,
            damping: 1.0,
            history_limit: 1024,
        }
    }
}

/// An online forecaster.
#[derive(Debug, Clone)]
pub struct Forecaster {
    params: ForecastParams,
    level: f64,
    trend: f64,
    /// Seasonal offsets once initialised; `season[i]` applies at steps `≡ i (mod period)`.
    season: Vec<f64>,
    /// Steps observed so far.
    steps: u64,
    history: VecDeque<f64>,
}

impl Forecaster {
    pub fn new(params: ForecastParams) -> Self {
        Self {
            params,
            level: 0.0,
            trend: 0.0,
            season: Vec::new(),
            steps: 0,
            history: VecDeque::with_capacity(params.history_limit.min(4096)),
        }
    }

    pub fn params(&self) -> &ForecastParams {
        &self.params
    }

    /// Whether the seasonal component is active.
    pub fn is_seasonal(&self) -> bool {
        !self.season.is_empty()
    }

    /// Observations so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Current smoothed level and trend (per step).
    pub fn level_and_trend(&self) -> (f64, f64) {
        (self.level, self.trend)
    }

    /// Folds in one observation. Non-finite values are ignored (the circuit breaker decides
    /// what to do about them; the model must not be poisoned).
    pub fn observe(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.history.len() == self.params.history_limit {
            self.history.pop_front();
        }
        if self.params.history_limit > 0 {
            self.history.push_back(x);
        }
        // The first two steps seed level and trend; with seasonal offsets already known (a
        // state restored with its level forgotten), net of the offset of their step.
        match self.steps {
            0 => self.level = x - self.offset(0),
            1 => {
                let level = x - self.offset(1);
                self.trend = level - self.level;
                self.level = level;
            }
            _ if self.is_seasonal() => self.update_seasonal(x),
            _ => self.update_holt(x),
        }
        self.steps += 1;
        if let ModelKind::HoltWinters { period } = self.params.kind
            && !self.is_seasonal()
            && period >= 2
            && self.steps >= 2 * period as u64
            && self.history.len() >= 2 * period
        {
            self.initialise_season(period);
        }
    }

    fn update_holt(&mut self, x: f64) {
        let ForecastParams {
            alpha,
            beta,
            damping,
            ..
        } = self.params;
        let previous = self.level;
        self.level = alpha * x + (1.0 - alpha) * (previous + damping * self.trend);
        self.trend = beta * (self.level - previous) + (1.0 - beta) * damping * self.trend;
    }

    fn update_seasonal(&mut self, x: f64) {
        let ForecastParams {
            alpha,
            beta,
            gamma,
            damping,
            ..
        } = self.params;
        let slot = self.slot(self.steps);
        let s = self.season[slot];
        let previous = self.level;
        self.level = alpha * (x - s) + (1.0 - alpha) * (previous + damping * self.trend);
        self.trend = beta * (self.level - previous) + (1.0 - beta) * damping * self.trend;
        self.season[slot] = gamma * (x - self.level) + (1.0 - gamma) * s;
    }

    fn slot(&self, step: u64) -> usize {
        (step % self.season.len() as u64) as usize
    }

    /// The seasonal offset at `step`; 0 without a season.
    fn offset(&self, step: u64) -> f64 {
        if self.is_seasonal() {
            self.season[self.slot(step)]
        } else {
            0.0
        }
    }

    /// Classic initialisation from the last two seasons of history: the trend is the difference
    /// of the season means over one period, the offsets are the first season's deviations from
    /// its mean; then the second season is replayed through the update equations.
    fn initialise_season(&mut self, period: usize) {
        let start = self.history.len() - 2 * period;
        let window: Vec<f64> = self.history.iter().skip(start).copied().collect();
        let (first, second) = window.split_at(period);
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
        let (m1, m2) = (mean(first), mean(second));
        // The first value of `window` was observed at step `steps − 2·period`; offsets are
        // stored by absolute step modulo the period.
        let first_step = self.steps - 2 * period as u64;
        let mut season = vec![0.0; period];
        for (i, &x) in first.iter().enumerate() {
            season[((first_step + i as u64) % period as u64) as usize] = x - m1;
        }
        self.season = season;
        self.trend = (m2 - m1) / period as f64;
        // Level at the end of the first season: its mean, moved half a season along the trend.
        self.level = m1 + self.trend * (period as f64 - 1.0) / 2.0;
        for (i, &x) in second.iter().enumerate() {
            let step = first_step + (period + i) as u64;
            let slot = self.slot(step);
            let s = self.season[slot];
            let previous = self.level;
            let ForecastParams {
                alpha,
                beta,
                gamma,
                damping,
                ..
            } = self.params;
            self.level = alpha * (x - s) + (1.0 - alpha) * (previous + damping * self.trend);
            self.trend = beta * (self.level - previous) + (1.0 - beta) * damping * self.trend;
            self.season[slot] = gamma * (x - self.level) + (1.0 - gamma) * s;
        }
    }

    /// The forecast `horizon` steps ahead (`horizon ≥ 1`; 0 is treated as 1), never negative.
    /// `None` before the first observation.
    pub fn forecast(&self, horizon: u32) -> Option<f64> {
        if self.steps == 0 {
            return None;
        }
        let h = horizon.max(1);
        let phi = self.params.damping;
        // Σ_{i=1..h} φ^i: h for an undamped trend.
        let multiplier = if phi >= 1.0 {
            f64::from(h)
        } else {
            phi * (1.0 - phi.powi(h as i32)) / (1.0 - phi)
        };
        let mut value = self.level + multiplier * self.trend;
        if self.is_seasonal() {
            // The last observation was step `steps − 1`; `h` ahead is step `steps − 1 + h`.
            value += self.season[self.slot(self.steps - 1 + u64::from(h))];
        }
        Some(if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holt(alpha: f64, beta: f64) -> Forecaster {
        Forecaster::new(ForecastParams {
            alpha,
            beta,
            ..ForecastParams::default()
        })
    }

    #[test]
    fn holt_is_exact_on_a_linear_series() {
        for (alpha, beta) in [(0.5, 0.3), (0.1, 0.9), (1.0, 1.0), (0.9, 0.05)] {
            let mut f = holt(alpha, beta);
            for t in 0..50 {
                f.observe(10.0 + 2.5 * f64::from(t));
            }
            // Last observation: t = 49 → 132.5; h steps ahead adds 2.5 h.
            for h in [1, 2, 10] {
                let expected = 132.5 + 2.5 * f64::from(h);
                let got = f.forecast(h).unwrap();
                assert!(
                    (got - expected).abs() < 1e-9,
                    "α={alpha} β={beta} h={h}: {got}"
                );
            }
        }
    }

    #[test]
    fn damping_flattens_the_trend() {
        let mut damped = Forecaster::new(ForecastParams {
            damping: 0.8,
            ..ForecastParams::default()
        });
        let mut plain = holt(0.5, 0.3);
        for t in 0..30 {
            damped.observe(f64::from(t));
            plain.observe(f64::from(t));
        }
        let (d, p) = (damped.forecast(20).unwrap(), plain.forecast(20).unwrap());
        assert!(d < p, "damped {d} should trail undamped {p}");
        // The damped multiplier is bounded by φ/(1−φ) = 4 steps of trend.
        let (level, trend) = damped.level_and_trend();
        assert!(d <= level + 4.0 * trend + 1e-9);
    }

    #[test]
    fn forecast_is_never_negative_and_ignores_nan() {
        let mut f = holt(0.5, 0.5);
        assert_eq!(f.forecast(1), None);
        for x in [100.0, 50.0, f64::NAN, 10.0, f64::INFINITY, 0.0] {
            f.observe(x);
        }
        assert_eq!(f.steps(), 4);
        assert_eq!(f.forecast(10), Some(0.0));
    }

    fn seasonal_series(t: usize, trend: f64) -> f64 {
        let shape = [0.0, 10.0, 30.0, 10.0, 0.0, -10.0, -30.0, -10.0];
        100.0 + trend * t as f64 + shape[t % shape.len()]
    }

    #[test]
    fn holt_winters_is_exact_on_a_flat_seasonal_series_after_two_seasons() {
        let mut f = Forecaster::new(ForecastParams {
            kind: ModelKind::HoltWinters { period: 8 },
            history_limit: 16,
            ..ForecastParams::default()
        });
        for t in 0..15 {
            f.observe(seasonal_series(t, 0.0));
        }
        assert!(!f.is_seasonal());
        f.observe(seasonal_series(15, 0.0));
        assert!(f.is_seasonal());
        for t in 16..40 {
            for h in 1..=8u32 {
                let want = seasonal_series(t - 1 + h as usize, 0.0);
                let got = f.forecast(h).unwrap();
                assert!((got - want).abs() < 1e-9, "t={t} h={h}: {got} vs {want}");
            }
            f.observe(seasonal_series(t, 0.0));
        }
    }

    #[test]
    fn holt_winters_tracks_a_trending_season_better_than_holt() {
        let params = ForecastParams {
            kind: ModelKind::HoltWinters { period: 8 },
            alpha: 0.3,
            beta: 0.1,
            gamma: 0.3,
            ..ForecastParams::default()
        };
        let mut hw = Forecaster::new(params);
        let mut plain = Forecaster::new(ForecastParams {
            kind: ModelKind::Holt,
            ..params
        });
        let (mut hw_error, mut holt_error) = (0.0, 0.0);
        for t in 0..400 {
            let x = seasonal_series(t, 0.5);
            if t >= 300 {
                hw_error += (hw.forecast(1).unwrap() - x).abs();
                holt_error += (plain.forecast(1).unwrap() - x).abs();
            }
            hw.observe(x);
            plain.observe(x);
        }
        assert!(
            hw_error < 0.1 * holt_error,
            "hw {hw_error} vs holt {holt_error}"
        );
    }
}
