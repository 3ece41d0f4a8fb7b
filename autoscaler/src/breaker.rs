//! A circuit breaker between telemetry and decisions.
//!
//! Bad telemetry is more dangerous to an autoscaler than no autoscaler: a scrape that returns
//! nothing looks exactly like traffic that stopped, and acting on it removes the capacity the
//! traffic needs. So, like the Kubernetes HPA (which refuses to scale down on partial metrics),
//! a sample that is missing, stale, NaN, negative, or whose arrival rate drops by more than a
//! configured fraction in one interval *opens* the breaker: scaling down is frozen, the last
//! good sample stands in for a bounded time (scaling up on it is still allowed), and the reason
//! is logged and exposed. The breaker closes after a number of consecutive good samples.

use std::fmt;
use std::time::{Duration, Instant};

use crate::telemetry::{Signal, Telemetry, TelemetryError};

/// Breaker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerParams {
    /// A sample older than this is stale.
    pub max_age: Duration,
    /// How long the last good sample may stand in for bad ones.
    pub hold_for: Duration,
    /// A drop of the arrival rate by more than this fraction in one interval trips the breaker
    /// (1 disables the check).
    pub drop_fraction: f64,
    /// Consecutive good samples that close an open breaker.
    pub close_after: u32,
    /// Fields the policy cannot decide without.
    pub required: Vec<Signal>,
}

impl Default for BreakerParams {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(60),
            hold_for: Duration::from_secs(120),
            drop_fraction: 0.5,
            close_after: 2,
            required: vec![Signal::ArrivalRate],
        }
    }
}

/// Why the breaker opened.
#[derive(Debug, Clone, PartialEq)]
pub enum Trip {
    /// The source returned an error.
    Unavailable { code: &'static str, detail: String },
    /// A required field was absent.
    Missing(Signal),
    /// The sample was older than `max_age`.
    Stale { age: Duration },
    /// A field was NaN or infinite.
    NotFinite(Signal),
    /// A field was negative.
    Negative { signal: Signal, value: f64 },
    /// The arrival rate fell by more than `drop_fraction` in one interval.
    SuddenDrop { from: f64, to: f64 },
}

impl Trip {
    /// Stable code for metrics and the status endpoint.
    pub fn code(&self) -> &'static str {
        match self {
            Trip::Unavailable { .. } => "unavailable",
            Trip::Missing(_) => "missing",
            Trip::Stale { .. } => "stale",
            Trip::NotFinite(_) => "not_finite",
            Trip::Negative { .. } => "negative",
            Trip::SuddenDrop { .. } => "sudden_drop",
        }
    }
}

impl fmt::Display for Trip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trip::Unavailable { code, detail } => {
                write!(f, "telemetry unavailable ({code}): {detail}")
            }
            Trip::Missing(s) => write!(f, "{s} is missing"),
            Trip::Stale { age } => write!(f, "telemetry is {:.1} s old", age.as_secs_f64()),
            Trip::NotFinite(s) => write!(f, "{s} is not a finite number"),
            Trip::Negative { signal, value } => write!(f, "{signal} is negative ({value})"),
            Trip::SuddenDrop { from, to } => {
                write!(
                    f,
                    "arrival rate dropped from {from:.3}/s to {to:.3}/s in one interval"
                )
            }
        }
    }
}

/// What the controller may use this interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The sample to decide on: this interval's if it was good, else the last good one while
    /// it is within `hold_for`, else nothing (hold the replica count).
    pub telemetry: Option<Telemetry>,
    /// Whether `telemetry` is this interval's sample.
    pub fresh: bool,
    /// False while the breaker is open.
    pub scale_down_allowed: bool,
    pub open: bool,
    /// Why the breaker is open (the latest bad sample's reason).
    pub trip: Option<Trip>,
}

/// The breaker's state across intervals.
#[derive(Debug, Clone)]
pub struct Breaker {
    params: BreakerParams,
    trip: Option<Trip>,
    good_streak: u32,
    last_good: Option<(Instant, Telemetry)>,
    previous_rate: Option<f64>,
}

impl Breaker {
    pub fn new(params: BreakerParams) -> Self {
        Self {
            params,
            trip: None,
            good_streak: 0,
            last_good: None,
            previous_rate: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.trip.is_some()
    }

    pub fn trip(&self) -> Option<&Trip> {
        self.trip.as_ref()
    }

    /// Judges this interval's reading at time `now`.
    pub fn admit(&mut self, now: Instant, reading: Result<Telemetry, TelemetryError>) -> Gate {
        let verdict = match reading {
            Ok(sample) => self.judge(now, sample),
            Err(err) => Err(Trip::Unavailable {
                code: err.code(),
                detail: err.to_string(),
            }),
        };
        match verdict {
            Ok(sample) => self.accept(now, sample),
            Err(trip) => self.reject(now, trip),
        }
    }

    /// Required fields must be present, finite and non-negative; an invalid optional field is
    /// dropped (no policy will see it) without tripping.
    fn judge(&mut self, now: Instant, mut sample: Telemetry) -> Result<Telemetry, Trip> {
        let previous_rate = self.previous_rate;
        if let Some(rate) = sample.arrival_rate.filter(|r| r.is_finite() && *r >= 0.0) {
            self.previous_rate = Some(rate);
        }
        for (signal, value) in sample.fields() {
            let required = self.params.required.contains(&signal);
            let trip = match value {
                Some(v) if !v.is_finite() => Trip::NotFinite(signal),
                Some(v) if v < 0.0 => Trip::Negative { signal, value: v },
                None if required => Trip::Missing(signal),
                _ => continue,
            };
            if required {
                return Err(trip);
            }
            tracing::debug!(reason = %trip, "ignoring an optional telemetry field");
            sample.clear(signal);
        }
        let age = now.saturating_duration_since(sample.observed_at);
        if age > self.params.max_age {
            return Err(Trip::Stale { age });
        }
        // Traffic does not vanish within one interval; a scrape that lost its series does.
        if self.params.required.contains(&Signal::ArrivalRate)
            && let (Some(from), Some(to)) = (previous_rate, sample.arrival_rate)
            && from > 0.0
            && to < (1.0 - self.params.drop_fraction) * from
        {
            return Err(Trip::SuddenDrop { from, to });
        }
        Ok(sample)
    }

    fn accept(&mut self, now: Instant, sample: Telemetry) -> Gate {
        self.last_good = Some((now, sample));
        if self.trip.is_some() {
            self.good_streak += 1;
            if self.good_streak >= self.params.close_after {
                tracing::info!(
                    good_samples = self.good_streak,
                    "telemetry healthy again: breaker closed"
                );
                self.trip = None;
                self.good_streak = 0;
            }
        }
        Gate {
            telemetry: Some(sample),
            fresh: true,
            scale_down_allowed: self.trip.is_none(),
            open: self.trip.is_some(),
            trip: self.trip.clone(),
        }
    }

    fn reject(&mut self, now: Instant, trip: Trip) -> Gate {
        if self.trip.as_ref().map(Trip::code) != Some(trip.code()) {
            tracing::warn!(reason = %trip, code = trip.code(), "breaker open: scale-down frozen");
        }
        self.good_streak = 0;
        self.trip = Some(trip.clone());
        let held = self
            .last_good
            .filter(|(at, _)| now.saturating_duration_since(*at) <= self.params.hold_for)
            .map(|(_, sample)| sample);
        Gate {
            telemetry: held,
            fresh: false,
            scale_down_allowed: false,
            open: true,
            trip: Some(trip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, rate: f64) -> Telemetry {
        Telemetry {
            arrival_rate: Some(rate),
            queue_length: Some(0.0),
            ..Telemetry::empty(at)
        }
    }

    #[test]
    fn bad_samples_freeze_scale_down_and_hold_the_last_good_value() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(15 * n);
        let mut b = Breaker::new(BreakerParams::default());
        let g = b.admit(s(0), Ok(sample(s(0), 100.0)));
        assert!(g.scale_down_allowed && g.fresh && !g.open);

        let cases: Vec<(Result<Telemetry, TelemetryError>, &str)> = vec![
            (Ok(sample(s(1), f64::NAN)), "not_finite"),
            (Ok(sample(s(2), -1.0)), "negative"),
            (Ok(Telemetry::empty(s(3))), "missing"),
            (Ok(sample(s(4) - Duration::from_secs(61), 100.0)), "stale"),
            (
                Err(TelemetryError::WarmingUp("first scrape".into())),
                "unavailable",
            ),
        ];
        for (n, (reading, code)) in cases.into_iter().enumerate() {
            let now = s(n as u64 + 1);
            let g = b.admit(now, reading);
            assert_eq!(g.trip.as_ref().map(Trip::code), Some(code));
            assert!(g.open && !g.scale_down_allowed && !g.fresh);
            // Held value: the sample accepted at s(0), as long as it is within 120 s.
            let within = now.duration_since(s(0)) <= Duration::from_secs(120);
            assert_eq!(g.telemetry.is_some(), within, "{code}");
            assert_eq!(
                g.telemetry.map(|t| t.arrival_rate),
                within.then_some(Some(100.0))
            );
        }
        // Past hold_for nothing is held: the controller must not act at all.
        let g = b.admit(s(10), Err(TelemetryError::WarmingUp("x".into())));
        assert_eq!(g.telemetry, None);
    }

    #[test]
    fn a_sudden_drop_opens_until_the_new_level_is_confirmed() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(15 * n);
        let mut b = Breaker::new(BreakerParams::default());
        assert!(!b.admit(s(0), Ok(sample(s(0), 100.0))).open);
        assert!(
            !b.admit(s(1), Ok(sample(s(1), 60.0))).open,
            "a 40 % drop is allowed"
        );
        let g = b.admit(s(2), Ok(sample(s(2), 10.0)));
        assert_eq!(
            g.trip,
            Some(Trip::SuddenDrop {
                from: 60.0,
                to: 10.0
            })
        );
        assert_eq!(g.telemetry.and_then(|t| t.arrival_rate), Some(60.0));
        // The low level persists: first good sample keeps it open (fresh data, no scale-down)...
        let g = b.admit(s(3), Ok(sample(s(3), 9.0)));
        assert!(g.open && g.fresh && !g.scale_down_allowed);
        assert_eq!(g.telemetry.and_then(|t| t.arrival_rate), Some(9.0));
        // ...the second closes it.
        let g = b.admit(s(4), Ok(sample(s(4), 9.5)));
        assert!(!g.open && g.scale_down_allowed);
        assert!(!b.is_open());
    }

    #[test]
    fn invalid_optional_fields_are_dropped_without_tripping() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerParams::default());
        let noisy = Telemetry {
            utilisation: Some(f64::NAN),
            service_rate_per_pod: Some(-3.0),
            ..sample(t0, 5.0)
        };
        let g = b.admit(t0, Ok(noisy));
        assert!(!g.open);
        let t = g.telemetry.unwrap();
        assert_eq!((t.utilisation, t.service_rate_per_pod), (None, None));
        // The same field trips the breaker when the policy needs it.
        let mut hpa = Breaker::new(BreakerParams {
            required: vec![Signal::Utilisation],
            ..BreakerParams::default()
        });
        let g = hpa.admit(t0, Ok(noisy));
        assert_eq!(g.trip, Some(Trip::NotFinite(Signal::Utilisation)));
        // An arrival-rate collapse is not its concern: two good samples close it.
        let busy = |rate| Telemetry {
            utilisation: Some(0.5),
            ..sample(t0, rate)
        };
        assert!(hpa.admit(t0, Ok(busy(100.0))).open);
        let g = hpa.admit(t0, Ok(busy(1.0)));
        assert!(!g.open && g.scale_down_allowed);
    }

    #[test]
    fn a_bad_sample_resets_the_good_streak() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerParams {
            close_after: 2,
            ..BreakerParams::default()
        });
        b.admit(t0, Ok(sample(t0, 5.0)));
        b.admit(t0, Ok(sample(t0, f64::INFINITY)));
        b.admit(t0, Ok(sample(t0, 5.0)));
        b.admit(t0, Ok(sample(t0, -5.0)));
        assert!(b.admit(t0, Ok(sample(t0, 5.0))).open);
        assert!(!b.admit(t0, Ok(sample(t0, 5.0))).open);
    }
}
