//! The forecaster's learned state as data, and the two ways back from a saved state after a
//! gap: bridge the missed intervals, or keep only the seasonal offsets.

use serde::{Deserialize, Serialize};

use super::{ForecastParams, Forecaster, ModelKind};

/// What a [`Forecaster`] has learned: level, trend, seasonal offsets, steps observed and the
/// history the seasonal model still needs. Saved across restarts by [`crate::checkpoint`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForecasterState {
    pub level: f64,
    /// Per step.
    pub trend: f64,
    /// Seasonal offsets by absolute step modulo the period; empty until two seasons are seen.
    pub season: Vec<f64>,
    /// Observations so far (the seasonal phase is `steps` modulo the period).
    pub steps: u64,
    /// The newest observations, oldest first, while the seasonal model still needs them to
    /// initialise (its last two seasons); empty otherwise, as nothing else reads them.
    pub history: Vec<f64>,
}

impl Forecaster {
    /// The learned state, to be saved.
    pub fn state(&self) -> ForecasterState {
        let needed = match self.params.kind {
            ModelKind::HoltWinters { period } if !self.is_seasonal() => 2 * period,
            _ => 0,
        };
        let skip = self.history.len().saturating_sub(needed);
        ForecasterState {
            level: self.level,
            trend: self.trend,
            season: self.season.clone(),
            steps: self.steps,
            history: self.history.iter().skip(skip).copied().collect(),
        }
    }

    /// A forecaster with `params` that continues from `state`, or why `state` cannot be
    /// continued with them (a value that is not finite, a season of another length, more
    /// history than observations). History beyond `params.history_limit` is dropped, oldest
    /// first.
    pub fn from_state(params: ForecastParams, state: ForecasterState) -> Result<Self, String> {
        let finite = [state.level, state.trend]
            .iter()
            .chain(&state.season)
            .chain(&state.history)
            .all(|x| x.is_finite());
        if !finite {
            return Err("a value is not a finite number".into());
        }
        let period = match params.kind {
            ModelKind::Holt => 0,
            ModelKind::HoltWinters { period } => period,
        };
        if !state.season.is_empty() && state.season.len() != period {
            return Err(format!(
                "{} seasonal offsets for a season of {period} steps",
                state.season.len()
            ));
        }
        if state.history.len() as u64 > state.steps {
            return Err(format!(
                "{} observations of history after {} steps",
                state.history.len(),
                state.steps
            ));
        }
        let mut forecaster = Forecaster::new(params);
        let skip = state.history.len().saturating_sub(params.history_limit);
        forecaster
            .history
            .extend(state.history.into_iter().skip(skip));
        forecaster.level = state.level;
        forecaster.trend = state.trend;
        forecaster.season = state.season;
        forecaster.steps = state.steps;
        Ok(forecaster)
    }

    /// Goes `missed` intervals forward without observations, each as if its observation had
    /// been exactly the one-step forecast: the level follows the (damped) trend, the seasonal
    /// offsets stay, the phase and the history stay aligned with the clock. This is how a
    /// state-space model treats missing observations. Nothing to do before the first one.
    pub fn skip(&mut self, missed: u64) {
        if self.steps == 0 {
            return;
        }
        for _ in 0..missed {
            // Unclamped, unlike `forecast`: a clamp would bend the level.
            let x = self.level + self.params.damping * self.trend + self.offset(self.steps);
            self.observe(x);
        }
    }

    /// Keeps the seasonal offsets, in phase with a clock `missed` intervals after the last
    /// observation, and forgets level, trend and history: the next observation sets the
    /// level again (net of its offset). Without seasonal offsets, forgets everything.
    pub fn keep_season_only(&mut self, missed: u64) {
        let period = self.season.len() as u64;
        if period == 0 {
            *self = Forecaster::new(self.params);
            return;
        }
        // The next observation will be step `steps + missed`; renumber it as step 0.
        let shift = (self.steps.wrapping_add(missed) % period) as usize;
        self.season.rotate_left(shift);
        self.steps = 0;
        self.level = 0.0;
        self.trend = 0.0;
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seasonal(period: usize) -> ForecastParams {
        ForecastParams {
            kind: ModelKind::HoltWinters { period },
            alpha: 0.3,
            beta: 0.1,
            gamma: 0.3,
            ..ForecastParams::default()
        }
    }

    fn series(t: u64) -> f64 {
        let shape = [0.0, 10.0, 30.0, 10.0, 0.0, -10.0, -30.0, -10.0];
        100.0 + shape[(t % 8) as usize]
    }

    #[test]
    fn a_restored_forecaster_continues_exactly() {
        for (params, n) in [
            (ForecastParams::default(), 50),
            (seasonal(8), 11), // before the season is initialised: history matters
            (seasonal(8), 40),
        ] {
            let mut original = Forecaster::new(params);
            for t in 0..n {
                original.observe(series(t));
            }
            let json = serde_json::to_string(&original.state()).unwrap();
            let state: ForecasterState = serde_json::from_str(&json).unwrap();
            let mut restored = Forecaster::from_state(params, state).unwrap();
            // JSON keeps a float to within its last bit (serde_json parses without
            // `float_roundtrip`).
            for t in n..n + 30 {
                let (a, b) = (restored.forecast(3).unwrap(), original.forecast(3).unwrap());
                assert!((a - b).abs() <= 1e-9 * b.abs(), "t={t}: {a} vs {b}");
                original.observe(series(t));
                restored.observe(series(t));
            }
            let (a, b) = (restored.state(), original.state());
            assert_eq!(
                (a.steps, a.history.len(), a.season.len()),
                (b.steps, b.history.len(), b.season.len())
            );
        }
    }

    #[test]
    fn only_the_history_still_needed_is_kept() {
        let mut holt = Forecaster::new(ForecastParams::default());
        let mut hw = Forecaster::new(seasonal(8));
        for t in 0..100 {
            holt.observe(series(t));
            if t == 12 {
                assert_eq!(hw.state().history.len(), 12);
            }
            hw.observe(series(t));
        }
        assert!(holt.state().history.is_empty());
        assert!(hw.is_seasonal() && hw.state().history.is_empty());
    }

    #[test]
    fn inconsistent_states_are_refused() {
        let good = {
            let mut f = Forecaster::new(seasonal(8));
            (0..20).for_each(|t| f.observe(series(t)));
            f.state()
        };
        let cases = [
            (
                ForecasterState {
                    level: f64::NAN,
                    ..good.clone()
                },
                seasonal(8),
            ),
            (good.clone(), seasonal(12)),
            (
                ForecasterState {
                    steps: 0,
                    history: vec![1.0],
                    ..good.clone()
                },
                seasonal(8),
            ),
        ];
        for (state, params) in cases {
            assert!(Forecaster::from_state(params, state).is_err());
        }
        assert!(Forecaster::from_state(seasonal(8), good).is_ok());
    }

    #[test]
    fn skipping_follows_the_trend_and_keeps_the_phase() {
        let mut f = Forecaster::new(ForecastParams::default());
        for t in 0..20 {
            f.observe(10.0 + 2.0 * f64::from(t));
        }
        let ahead = f.forecast(5).unwrap();
        f.skip(4);
        assert_eq!(f.steps(), 24);
        assert!((f.forecast(1).unwrap() - ahead).abs() < 1e-9);
        // Seasonal: after skipping, the forecast is what it was for that many steps ahead.
        let mut s = Forecaster::new(seasonal(8));
        (0..40).for_each(|t| s.observe(series(t)));
        let want: Vec<f64> = (1..=8).map(|h| s.forecast(3 + h).unwrap()).collect();
        s.skip(3);
        let got: Vec<f64> = (1..=8).map(|h| s.forecast(h).unwrap()).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn keeping_the_season_only_relearns_the_level_in_phase() {
        let mut f = Forecaster::new(seasonal(8));
        (0..80).for_each(|t| f.observe(series(t)));
        // A day later the same pattern runs 50 higher; 13 steps were missed.
        f.keep_season_only(13);
        assert_eq!((f.steps(), f.forecast(1)), (0, None));
        let mut t = 80 + 13;
        for _ in 0..2 {
            f.observe(series(t) + 50.0);
            t += 1;
        }
        // Two observations set the level; the offsets were kept in phase.
        for h in 1..=8u32 {
            let want = series(t - 1 + u64::from(h)) + 50.0;
            let got = f.forecast(h).unwrap();
            assert!((got - want).abs() < 1.0, "h={h}: {got} vs {want}");
        }
        let mut holt = Forecaster::new(ForecastParams::default());
        holt.observe(5.0);
        holt.keep_season_only(3);
        assert_eq!(holt.steps(), 0);
    }
}
