//! Per-image timings in milliseconds and the one line the benchmark prints for each.

use std::time::Instant;

/// Per-image samples in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    /// Runs `f`, records how long it took, and returns its result.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.0.push(started.elapsed().as_secs_f64() * 1000.0);
        out
    }

    /// The mean, in milliseconds.
    pub fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }

    /// The median (the upper one of an even count), in milliseconds.
    pub fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// The fastest sample, in milliseconds.
    pub fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// Both sets of samples as one.
    pub fn merged(&self, other: &Samples) -> Samples {
        Samples(self.0.iter().chain(&other.0).copied().collect())
    }

    /// Prints `what` with the mean, median and minimum.
    pub fn row(&self, what: &str) {
        println!(
            "  {what:<44} mean {:>7.2}  median {:>7.2}  min {:>7.2} ms/image",
            self.mean(),
            self.median(),
            self.min()
        );
    }
}
