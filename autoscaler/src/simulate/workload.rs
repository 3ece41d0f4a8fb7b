//! Workload traces: per-second mean arrival rates in the load tester's `workload.txt` format,
//! read by the one parser of that format ([`harness_core::workload`], decimals allowed here),
//! and the generator of the shipped synthetic traces.

use std::f64::consts::PI;
use std::fmt::Write as _;
use std::path::Path;

pub use harness_core::workload::WorkloadError;
use harness_core::workload::{self, Numbers};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Arrival rate (requests/s) for each second.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    rates: Vec<f64>,
}

impl Workload {
    /// A workload from rates (negative and non-finite values become 0).
    pub fn from_rates(rates: Vec<f64>) -> Self {
        let rates = rates
            .into_iter()
            .map(|r| if r.is_finite() { r.max(0.0) } else { 0.0 })
            .collect();
        Self { rates }
    }

    /// Parses a trace; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, WorkloadError> {
        workload::parse_rates(text, origin, Numbers::Decimal).map(|rates| Self { rates })
    }

    /// Reads a trace file; errors name the file, line and column, as the load tester's do.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        workload::read_rates(path, Numbers::Decimal).map(|rates| Self { rates })
    }

    pub fn rates(&self) -> &[f64] {
        &self.rates
    }

    /// Length in seconds.
    pub fn seconds(&self) -> usize {
        self.rates.len()
    }

    /// Expected number of requests.
    pub fn expected_requests(&self) -> f64 {
        self.rates.iter().sum()
    }

    /// The text format, ten values a line, under a `#` header.
    pub fn to_text(&self, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            let _ = writeln!(out, "# {line}");
        }
        for chunk in self.rates.chunks(10) {
            let line: Vec<String> = chunk.iter().map(|r| r.to_string()).collect();
            let _ = writeln!(out, "{}", line.join(", "));
        }
        out
    }
}

/// The synthetic traces shipped in `autoscaler/workloads/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// 24 h: night trough, morning ramp, afternoon peak, evening shoulder; 3 % noise.
    Diurnal,
    /// 2 h: a steady base with a flash crowd ×5 in 30 s, and a smaller second one.
    Spike,
    /// 1 h: a linear climb ×30 over 40 min, a plateau, then a drop.
    Ramp,
    /// 48 h: two diurnal days, the second 15 % busier, with 10 % noise and a burst of ×1.5
    /// for a few minutes every few hours.
    NoisyDiurnal,
    /// `noisy-diurnal` with the same seed's noise and without its bursts: the control that
    /// tells what the bursts do to a comparison.
    NoisyDiurnalNoBursts,
    /// 7 days: weekdays like `diurnal`, Saturday and Sunday at half the peak and later; 3 %
    /// noise.
    Weekly,
    /// 2 h: a level held for 10–20 minutes, then a jump (up or down) to another, ×1.5 to ×4.
    Steps,
    /// 3 h: climbs and descents of different slopes, from 20 to 200 requests/s and back.
    Ramps,
}

impl Shape {
    /// The trace, deterministic for a seed.
    pub fn generate(self, seed: u64) -> Workload {
        let mut rng = SmallRng::seed_from_u64(seed);
        let rates: Vec<f64> = match self {
            Shape::NoisyDiurnal => noisy_diurnal(&mut rng, true),
            Shape::NoisyDiurnalNoBursts => noisy_diurnal(&mut rng, false),
            Shape::Weekly => weekly(&mut rng),
            Shape::Steps => steps(&mut rng),
            Shape::Ramps => ramps(&mut rng),
            other => other.shipped(&mut rng),
        };
        // Whole requests per second, so that `load-tester run --workload` replays the same
        // file (its format takes integers only).
        Workload::from_rates(rates.into_iter().map(f64::round).collect())
    }

    /// The three shapes shipped in `workloads/` (their files are this, byte for byte).
    fn shipped(self, rng: &mut SmallRng) -> Vec<f64> {
        let mut noisy = |r: f64| r * (1.0 + 0.03 * (rng.random::<f64>() * 2.0 - 1.0));
        match self {
            Shape::Diurnal => (0..86_400)
                .map(|s| noisy(day_shape(f64::from(s) / 3600.0, 1.0)))
                .collect(),
            Shape::Spike => (0..7_200)
                .map(|s| {
                    let t = f64::from(s);
                    let flash = |at: f64, height: f64| {
                        if t < at {
                            0.0
                        } else if t < at + 30.0 {
                            height * (t - at) / 30.0
                        } else if t < at + 630.0 {
                            height
                        } else {
                            height * (-(t - at - 630.0) / 300.0).exp()
                        }
                    };
                    noisy(30.0 + flash(1_800.0, 120.0) + flash(5_400.0, 60.0))
                })
                .collect(),
            Shape::Ramp => (0..3_600)
                .map(|s| {
                    let t = f64::from(s);
                    let rate = if t < 300.0 {
                        5.0
                    } else if t < 2_700.0 {
                        5.0 + 145.0 * (t - 300.0) / 2_400.0
                    } else if t < 3_300.0 {
                        150.0
                    } else {
                        20.0
                    };
                    noisy(rate)
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The diurnal day at `hours` past midnight, scaled by `scale`: trough at 04:00, peak at
/// 16:00, a lunchtime and an evening bump.
fn day_shape(hours: f64, scale: f64) -> f64 {
    let day = (1.0 - (2.0 * PI * (hours - 4.0) / 24.0).cos()) / 2.0;
    let lunch = 12.0 * (-(hours - 12.5).powi(2) / 0.5).exp();
    let evening = 18.0 * (-(hours - 20.5).powi(2) / 1.5).exp();
    12.0 + scale * (95.0 * day.powf(1.5) + lunch + evening)
}

fn jitter(rng: &mut SmallRng, amplitude: f64) -> f64 {
    1.0 + amplitude * (rng.random::<f64>() * 2.0 - 1.0)
}

/// Without `bursts`, the bursts are still drawn (so the noise that follows is the same) but
/// not applied.
fn noisy_diurnal(rng: &mut SmallRng, bursts_on: bool) -> Vec<f64> {
    // Bursts: ×1.5 for 3–8 minutes, one every 2–5 hours.
    let mut bursts = Vec::new();
    let mut at = 3_600.0 * rng.random_range(1.0..3.0);
    while at < 172_800.0 {
        bursts.push((at, at + 60.0 * rng.random_range(3.0..8.0)));
        at += 3_600.0 * rng.random_range(2.0..5.0);
    }
    (0..172_800)
        .map(|s| {
            let t = f64::from(s);
            let day = if s < 86_400 { 1.0 } else { 1.15 };
            let burst = if bursts_on && bursts.iter().any(|&(a, b)| t >= a && t < b) {
                1.5
            } else {
                1.0
            };
            day_shape((t / 3600.0) % 24.0, day) * burst * jitter(rng, 0.10)
        })
        .collect()
}

fn weekly(rng: &mut SmallRng) -> Vec<f64> {
    (0..604_800)
        .map(|s| {
            let hours = f64::from(s) / 3600.0;
            let weekend = hours >= 120.0;
            // Weekends wake two hours later and peak at half the weekday's.
            let (shift, scale) = if weekend { (2.0, 0.5) } else { (0.0, 1.0) };
            day_shape((hours - shift).rem_euclid(24.0), scale) * jitter(rng, 0.03)
        })
        .collect()
}

fn steps(rng: &mut SmallRng) -> Vec<f64> {
    let mut rates = Vec::with_capacity(7_200);
    let mut level: f64 = 30.0;
    while rates.len() < 7_200 {
        let hold = rng.random_range(600..1_200);
        for _ in 0..hold {
            rates.push(level * jitter(rng, 0.03));
        }
        let factor = rng.random_range(1.5..4.0);
        level = if level * factor > 200.0 || (level > 40.0 && rng.random::<bool>()) {
            (level / factor).max(10.0)
        } else {
            level * factor
        };
    }
    rates.truncate(7_200);
    rates
}

fn ramps(rng: &mut SmallRng) -> Vec<f64> {
    // (minutes to get there, level): climbs and descents of different slopes.
    let legs = [
        (15.0, 20.0),
        (20.0, 120.0),
        (10.0, 120.0),
        (10.0, 40.0),
        (30.0, 200.0),
        (15.0, 200.0),
        (40.0, 30.0),
        (10.0, 90.0),
        (30.0, 20.0),
    ];
    let mut rates = Vec::with_capacity(10_800);
    let mut from = 20.0;
    for (minutes, to) in legs {
        let n = (minutes * 60.0) as usize;
        for i in 0..n {
            let r = from + (to - from) * i as f64 / n as f64;
            rates.push(r * jitter(rng, 0.03));
        }
        from = to;
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commas_whitespace_comments_and_decimals() {
        let w = Workload::parse("# header\n1, 2,3\t4\n\n 5.5 # trailing\n,6,\n", "t").unwrap();
        assert_eq!(w.rates(), &[1.0, 2.0, 3.0, 4.0, 5.5, 6.0]);
        assert_eq!(w.seconds(), 6);
    }

    #[test]
    fn errors_point_at_line_and_column_as_the_load_testers_do() {
        let cases = [
            ("1, 2\n3, x4, 5", 2, 4),
            ("1,-2", 1, 3),
            ("1 2 3\n   NaN", 2, 4),
            ("inf", 1, 1),
            ("# only a comment\n", 2, 1),
            ("", 1, 1),
        ];
        for (text, line, column) in cases {
            let err = Workload::parse(text, "t.txt").expect_err(text).to_string();
            let at = format!("t.txt:{line}:{column}: ");
            assert!(err.starts_with(&at), "{text:?}: {err}");
        }
    }

    #[test]
    fn generated_traces_are_deterministic_and_round_trip() {
        for shape in [
            Shape::Diurnal,
            Shape::Spike,
            Shape::Ramp,
            Shape::Steps,
            Shape::Ramps,
        ] {
            let a = shape.generate(7);
            assert_eq!(a, shape.generate(7));
            assert_ne!(a, shape.generate(8));
            let text = a.to_text("test");
            assert_eq!(Workload::parse(&text, "generated").unwrap(), a);
        }
        assert_eq!(Shape::Diurnal.generate(1).seconds(), 86_400);
        assert_eq!(Shape::Steps.generate(1).seconds(), 7_200);
        assert_eq!(Shape::Ramps.generate(1).seconds(), 10_800);
    }

    #[test]
    fn the_control_trace_differs_only_by_the_bursts() {
        let bursty = Shape::NoisyDiurnal.generate(3);
        let calm = Shape::NoisyDiurnalNoBursts.generate(3);
        assert_eq!(bursty.seconds(), 172_800);
        assert_eq!(calm.seconds(), bursty.seconds());
        let (mut same, mut burst_seconds) = (0, 0);
        for (&b, &c) in bursty.rates().iter().zip(calm.rates()) {
            if b == c {
                same += 1;
            } else {
                // Both rounded to whole requests: b = round(1.5 x), c = round(x).
                assert!((b - 1.5 * c).abs() <= 1.0, "bursty {b}, calm {c}");
                burst_seconds += 1;
            }
        }
        // Bursts of 3–8 minutes every 2–5 hours: 8–24 of them over 48 h.
        assert!(
            (8 * 180..=24 * 480).contains(&burst_seconds),
            "{burst_seconds} seconds differ"
        );
        assert!(same > 160_000, "{same} seconds equal");
    }

    #[test]
    fn the_shipped_files_are_what_the_generator_writes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        for (shape, name) in [(Shape::Spike, "spike"), (Shape::Ramp, "ramp")] {
            let file = Workload::load(&dir.join(format!("{name}.txt"))).unwrap();
            assert_eq!(file, shape.generate(1), "{name}");
        }
    }
}
