//! Forecast accuracy on a trace: the mean absolute scaled error (MASE) of the predictive
//! policy's forecaster at the cold-start horizon.
//!
//! The forecaster sees what the controller sees: one arrival rate per decision interval,
//! counted from Poisson arrivals at the trace's rate (seeded). Its error `h` intervals ahead
//! is divided by the in-sample error of the naive forecast at the same horizon (the value `h`
//! intervals earlier). Below 1, the forecaster beats "it stays as it is".

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Poisson};
use serde::Serialize;

use crate::forecast::{ForecastParams, Forecaster};
use crate::simulate::Workload;

/// MASE at one horizon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accuracy {
    /// Steps ahead, in decision intervals.
    pub horizon_intervals: u32,
    /// Mean |actual − forecast| at the horizon, requests/s.
    pub forecast_mae: f64,
    /// Mean |actual − actual `h` intervals earlier|, requests/s.
    pub naive_mae: f64,
    /// forecast / naive; `None` when the naive error is 0 (a constant series).
    pub mase: Option<f64>,
}

/// The per-interval arrival rates a controller would measure on `workload`.
pub fn observed_rates(workload: &Workload, interval_seconds: f64, seed: u64) -> Vec<f64> {
    let step = (interval_seconds.round() as usize).max(1);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6d61_7365);
    workload
        .rates()
        .chunks_exact(step)
        .map(|chunk| {
            let expected: f64 = chunk.iter().sum();
            let count = match Poisson::new(expected) {
                Ok(poisson) => poisson.sample(&mut rng),
                Err(_) => 0.0,
            };
            count / step as f64
        })
        .collect()
}

/// MASE of the forecaster with `params`, `horizon` steps ahead, over `series`.
pub fn mase(series: &[f64], params: ForecastParams, horizon: u32) -> Accuracy {
    let h = horizon.max(1) as usize;
    let mut forecaster = Forecaster::new(params);
    let (mut forecast_error, mut forecasts) = (0.0, 0usize);
    for (t, &x) in series.iter().enumerate() {
        forecaster.observe(x);
        if let (Some(actual), Some(f)) = (series.get(t + h), forecaster.forecast(horizon)) {
            forecast_error += (actual - f).abs();
            forecasts += 1;
        }
    }
    let naive: Vec<f64> = series.windows(h + 1).map(|w| (w[h] - w[0]).abs()).collect();
    let naive_mae = naive.iter().sum::<f64>() / naive.len().max(1) as f64;
    let forecast_mae = forecast_error / forecasts.max(1) as f64;
    Accuracy {
        horizon_intervals: horizon,
        forecast_mae,
        naive_mae,
        mase: (naive_mae > 0.0).then(|| forecast_mae / naive_mae),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holt_beats_naive_on_a_line_and_a_constant_has_nothing_to_scale_by() {
        // On a straight line Holt is exact once it has the trend; the naive forecast is off by
        // h × slope every time.
        let line: Vec<f64> = (0..400).map(|t| 10.0 + 0.5 * f64::from(t)).collect();
        let a = mase(&line, ForecastParams::default(), 3);
        assert!((a.naive_mae - 1.5).abs() < 1e-9, "{a:?}");
        assert!(a.mase.unwrap() < 0.1, "{a:?}");
        // A constant series: nothing to scale by.
        assert_eq!(mase(&[5.0; 50], ForecastParams::default(), 3).mase, None);
    }

    #[test]
    fn observed_rates_average_each_interval() {
        let w = Workload::from_rates(vec![100.0; 150]);
        let rates = observed_rates(&w, 15.0, 1);
        assert_eq!(rates.len(), 10);
        let mean = rates.iter().sum::<f64>() / 10.0;
        assert!((mean - 100.0).abs() < 5.0, "{rates:?}");
        assert_eq!(rates, observed_rates(&w, 15.0, 1));
    }
}
