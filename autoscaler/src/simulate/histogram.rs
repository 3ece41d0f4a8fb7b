//! A coarse latency histogram for the per-bucket p95 of the plot and the JSON series: 8 bins
//! per octave (±4.5 %), indexed by the exponent and top three mantissa bits of the value as an
//! `f64`, so that recording is a shift and an increment (an HDR record per request per bucket
//! was a sixth of the simulator's time).

/// A coarse latency histogram for the per-bucket p95 of the plot: 8 bins per octave (±4.5 %),
/// indexed by the exponent and top three mantissa bits of the value as an `f64`, so that
/// recording is a shift and an increment.
pub(super) struct LogBins {
    counts: Vec<u32>,
    pub(super) total: u64,
}

impl LogBins {
    /// Covers 1 µs to 2^64 µs.
    const BINS: usize = 64 * 8;
    /// `(bits >> 49)` of 1.0.
    const ONE: u64 = 1023 << 3;

    pub(super) fn new() -> Self {
        Self {
            counts: vec![0; Self::BINS],
            total: 0,
        }
    }

    pub(super) fn record(&mut self, micros: u64) {
        let index = ((micros.max(1) as f64).to_bits() >> 49) - Self::ONE;
        self.counts[(index as usize).min(Self::BINS - 1)] += 1;
        self.total += 1;
    }

    /// The upper edge of the bin holding quantile `q`, in microseconds.
    pub(super) fn quantile(&self, q: f64) -> f64 {
        let rank = (q * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return f64::from_bits((i as u64 + 1 + Self::ONE) << 49);
            }
        }
        0.0
    }

    pub(super) fn reset(&mut self) {
        if self.total > 0 {
            self.counts.fill(0);
            self.total = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogBins;

    #[test]
    fn log_bins_quantiles_are_within_a_bin() {
        let mut bins = LogBins::new();
        for micros in 1..=100_000u64 {
            bins.record(micros);
        }
        for q in [0.5, 0.95, 0.99] {
            let exact = q * 100_000.0;
            let got = bins.quantile(q);
            // The upper edge of a bin 2^(1/8) wide.
            assert!(
                got >= exact && got <= exact * 1.1,
                "q={q}: {got} vs {exact}"
            );
        }
        bins.reset();
        assert_eq!(bins.quantile(0.5), 0.0);
        bins.record(0);
        bins.record(u64::MAX);
        assert!(bins.quantile(1.0) > 1e18);
    }
}
