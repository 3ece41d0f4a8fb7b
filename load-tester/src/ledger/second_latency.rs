//! The latencies of one second of a run, in memory bounded by design.
//!
//! A second keeps its first [`EXACT_CAPACITY`] values exactly, inline (no allocation): at the
//! steady rates of a soak every second stays exact and the per-second storage is allocated once,
//! when the run starts. Beyond that the second switches to a sparse log-bucket histogram: 64
//! buckets per power of two, only the non-empty ones stored (6 bytes each). A percentile is
//! then the middle of its bucket, within 0.8 % of the exact value (values under 128 µs stay
//! exact); a second of 40–60 ms latencies uses about 40 buckets (under 300 bytes, where an HDR
//! histogram with 2 significant digits takes 5 KB), and no second can take more than
//! [`MAX_BUCKETS`] buckets (about 11 KB) whatever it holds.
//!
//! The run-wide percentiles of `stats.json` come from the ledger's HDR histograms, not from here.

use serde::{Deserialize, Serialize};

/// Values a second keeps exactly before switching to buckets.
const EXACT_CAPACITY: usize = 8;
/// Values under this are their own bucket (exact).
const LINEAR: u32 = 128;
/// Buckets per power of two above [`LINEAR`].
const PER_OCTAVE: u32 = 64;
/// Buckets a second can hold at most (every `u32` value of µs).
const MAX_BUCKETS: usize = (LINEAR + (32 - 7) * PER_OCTAVE) as usize;

/// Latencies (µs) of one second: exact while few, sparse buckets beyond.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SecondLatency {
    /// The first `len` entries of `values`, unsorted.
    Exact {
        len: u8,
        values: [u32; EXACT_CAPACITY],
    },
    /// `(bucket, count)` pairs sorted by bucket, and their total count.
    Buckets {
        count: u64,
        buckets: Vec<(u16, u32)>,
    },
}

impl Default for SecondLatency {
    fn default() -> Self {
        Self::Exact {
            len: 0,
            values: [0; EXACT_CAPACITY],
        }
    }
}

/// The bucket of a value: the value itself under [`LINEAR`], else its power of two and its
/// 6 bits below the leading one.
fn bucket_of(value: u32) -> u16 {
    if value < LINEAR {
        return value as u16;
    }
    let exponent = 31 - value.leading_zeros(); // 7..=31
    let shift = exponent - 6;
    let mantissa = (value >> shift) - PER_OCTAVE; // 0..64
    (LINEAR + (exponent - 7) * PER_OCTAVE + mantissa) as u16
}

/// The value a bucket stands for: the middle of its range (exact under [`LINEAR`]).
fn value_of(bucket: u16) -> u32 {
    let bucket = u32::from(bucket);
    if bucket < LINEAR {
        return bucket;
    }
    let exponent = (bucket - LINEAR) / PER_OCTAVE + 7;
    let mantissa = (bucket - LINEAR) % PER_OCTAVE + PER_OCTAVE;
    let shift = exponent - 6;
    let low = u64::from(mantissa) << shift;
    let width = 1u64 << shift;
    u32::try_from(low + (width - 1) / 2).unwrap_or(u32::MAX)
}

/// Nearest rank of quantile `q` among `count` values, 1-based.
fn rank(q: f64, count: u64) -> u64 {
    ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count)
}

impl SecondLatency {
    /// Records one latency in µs (values above `u32::MAX` µs, 71 minutes, saturate).
    pub fn record(&mut self, micros: u64) {
        let value = u32::try_from(micros).unwrap_or(u32::MAX);
        match self {
            Self::Exact { len, values } if usize::from(*len) < EXACT_CAPACITY => {
                values[usize::from(*len)] = value;
                *len += 1;
            }
            Self::Exact { values, .. } => {
                let mut buckets = Vec::new();
                for &v in values.iter() {
                    add(&mut buckets, bucket_of(v));
                }
                add(&mut buckets, bucket_of(value));
                *self = Self::Buckets {
                    count: EXACT_CAPACITY as u64 + 1,
                    buckets,
                };
            }
            Self::Buckets { count, buckets } => {
                *count += 1;
                add(buckets, bucket_of(value));
            }
        }
    }

    /// How many latencies the second holds.
    pub fn len(&self) -> u64 {
        match self {
            Self::Exact { len, .. } => u64::from(*len),
            Self::Buckets { count, .. } => *count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the values are still exact.
    pub fn is_exact(&self) -> bool {
        matches!(self, Self::Exact { .. })
    }

    /// The latency (µs) at quantile `q` (nearest rank); `None` when the second is empty.
    pub fn value_at_quantile(&self, q: f64) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        let target = rank(q, self.len());
        match self {
            Self::Exact { len, values } => {
                let mut sorted = *values;
                let sorted = &mut sorted[..usize::from(*len)];
                sorted.sort_unstable();
                Some(u64::from(sorted[(target - 1) as usize]))
            }
            Self::Buckets { buckets, .. } => {
                let mut seen = 0u64;
                buckets
                    .iter()
                    .find(|&&(_, n)| {
                        seen += u64::from(n);
                        seen >= target
                    })
                    .map(|&(bucket, _)| u64::from(value_of(bucket)))
            }
        }
    }
}

/// Counts one value in sorted sparse `buckets`.
fn add(buckets: &mut Vec<(u16, u32)>, bucket: u16) {
    match buckets.binary_search_by_key(&bucket, |&(b, _)| b) {
        Ok(i) => buckets[i].1 = buckets[i].1.saturating_add(1),
        Err(i) => buckets.insert(i, (bucket, 1)),
    }
    debug_assert!(buckets.len() <= MAX_BUCKETS);
}

#[cfg(test)]
mod tests;
