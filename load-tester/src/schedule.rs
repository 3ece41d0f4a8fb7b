//! The schedule: when each request of a test is due, as an offset from the test start.
//!
//! A [`Plan`] fixes how many requests each second sends (the workload's rate, a Poisson draw
//! around it, capped by `maxImages`) before the test starts, so the total is known up front and
//! a request's sequence number maps back to its second with a binary search instead of a
//! per-request table. The offsets inside a second are produced lazily by [`Plan::slots`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Serialize};

use crate::workload::Workload;

/// The arrival process by the name users write and read: `--arrivals`, the `arrivals` field
/// of `POST /runLoadTest` and of `stats.json` (`uniform`, `poisson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalProcess {
    Uniform,
    Poisson,
}

/// An arrival process name that is neither `uniform` nor `poisson`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("arrivals must be uniform or poisson, got {0:?}")]
pub struct UnknownArrivals(pub String);

impl ArrivalProcess {
    /// The stable name: `uniform` or `poisson`.
    pub fn name(self) -> &'static str {
        match self {
            ArrivalProcess::Uniform => "uniform",
            ArrivalProcess::Poisson => "poisson",
        }
    }

    /// The process with its seed (used by Poisson only).
    pub fn with_seed(self, seed: u64) -> Arrivals {
        match self {
            ArrivalProcess::Uniform => Arrivals::Uniform,
            ArrivalProcess::Poisson => Arrivals::Poisson { seed },
        }
    }
}

impl FromStr for ArrivalProcess {
    type Err = UnknownArrivals;

    /// Any case: `Poisson` is as good as `poisson` in a request body.
    fn from_str(name: &str) -> Result<Self, UnknownArrivals> {
        match name.to_ascii_lowercase().as_str() {
            "uniform" => Ok(ArrivalProcess::Uniform),
            "poisson" => Ok(ArrivalProcess::Poisson),
            _ => Err(UnknownArrivals(name.to_owned())),
        }
    }
}

impl fmt::Display for ArrivalProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How requests are spread inside each second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// `N` requests at `k / N` seconds into the second, `k = 0..N`.
    Uniform,
    /// A Poisson process with rate `N` in each second, reproducible from the seed.
    Poisson { seed: u64 },
}

impl Arrivals {
    /// Parses `uniform` or `poisson` in any case (the seed comes from its own setting).
    pub fn parse(name: &str, seed: u64) -> Option<Self> {
        name.parse::<ArrivalProcess>()
            .ok()
            .map(|process| process.with_seed(seed))
    }

    /// The process without its seed.
    pub fn process(self) -> ArrivalProcess {
        match self {
            Arrivals::Uniform => ArrivalProcess::Uniform,
            Arrivals::Poisson { .. } => ArrivalProcess::Poisson,
        }
    }

    /// The process's stable name (`uniform`, `poisson`).
    pub fn name(self) -> &'static str {
        self.process().name()
    }
}

/// One request of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// 0-based position in the test; part of the request id.
    pub seq: u64,
    /// Intended send time, from the test start.
    pub offset: Duration,
}

/// How many requests each second sends, fixed before the test starts.
#[derive(Debug, Clone)]
pub struct Plan {
    arrivals: Arrivals,
    /// The workload's rates, kept to space uniform arrivals and for the report.
    rates: Vec<u32>,
    /// `starts[s]` is the seq of the first request of second `s`; `starts[len]` the total.
    starts: Vec<u64>,
}

impl Plan {
    /// Plans a workload; `max_requests` caps the total (the `maxImages` setting).
    pub fn new(workload: &Workload, arrivals: Arrivals, max_requests: Option<u64>) -> Self {
        let rates = workload.rates().to_vec();
        let mut remaining = max_requests.unwrap_or(u64::MAX);
        let mut starts = Vec::with_capacity(rates.len() + 1);
        let mut total = 0u64;
        for (second, &rate) in rates.iter().enumerate() {
            starts.push(total);
            let drawn = match arrivals {
                Arrivals::Uniform => u64::from(rate),
                Arrivals::Poisson { seed } => poisson_count(seed, second, rate),
            };
            let count = drawn.min(remaining);
            remaining -= count;
            total += count;
        }
        starts.push(total);
        Self {
            arrivals,
            rates,
            starts,
        }
    }

    pub fn arrivals(&self) -> Arrivals {
        self.arrivals
    }

    /// The workload's rates (offered load), one per second.
    pub fn rates(&self) -> &[u32] {
        &self.rates
    }

    /// Length of the schedule in seconds.
    pub fn seconds(&self) -> usize {
        self.rates.len()
    }

    /// Requests the plan sends in total.
    pub fn total(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Requests planned for second `s`.
    pub fn count(&self, second: usize) -> u64 {
        self.starts[second + 1] - self.starts[second]
    }

    /// The second a request belongs to. `seq` must be below [`Plan::total`].
    pub fn second_of(&self, seq: u64) -> usize {
        // starts is non-decreasing; the last start <= seq is the request's second (skipping
        // empty seconds, whose start equals the next one's).
        self.starts.partition_point(|&start| start <= seq) - 1
    }

    /// Every request of the plan in send order.
    pub fn slots(&self) -> Slots<'_> {
        Slots {
            plan: self,
            second: 0,
            seq: 0,
            offsets: Vec::new(),
        }
    }
}

/// Poisson-distributed count for one second, from an RNG derived from (seed, second) so that
/// any second can be regenerated on its own.
fn poisson_count(seed: u64, second: usize, rate: u32) -> u64 {
    if rate == 0 {
        return 0;
    }
    let mut rng = second_rng(seed, second, 0);
    match Poisson::new(f64::from(rate)) {
        Ok(poisson) => poisson.sample(&mut rng) as u64,
        Err(_) => u64::from(rate),
    }
}

fn second_rng(seed: u64, second: usize, stream: u64) -> StdRng {
    let mixed = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((second as u64) << 1 | stream);
    StdRng::seed_from_u64(mixed)
}

/// Iterator over the slots of a plan, one second at a time.
#[derive(Debug)]
pub struct Slots<'a> {
    plan: &'a Plan,
    second: usize,
    seq: u64,
    /// Offsets (within the current second) still to hand out, reversed: `pop` gives the next.
    offsets: Vec<f64>,
}

impl Slots<'_> {
    fn fill_second(&mut self) {
        let plan = self.plan;
        let count = plan.count(self.second) as usize;
        let rate = f64::from(plan.rates[self.second]);
        self.offsets.clear();
        match plan.arrivals {
            // Spaced by the workload rate, not by the (possibly capped) count, so a cap cuts
            // the second short instead of slowing it down.
            Arrivals::Uniform => self
                .offsets
                .extend((0..count).rev().map(|k| k as f64 / rate)),
            // Given the count, the arrival times of a Poisson process in an interval are
            // independent and uniform: draw and sort them.
            Arrivals::Poisson { seed } => {
                let mut rng = second_rng(seed, self.second, 1);
                self.offsets.extend((0..count).map(|_| rng.random::<f64>()));
                self.offsets.sort_by(|a, b| b.total_cmp(a));
            }
        }
    }
}

impl Iterator for Slots<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        while self.offsets.is_empty() {
            if self.seq >= self.plan.total() || self.second >= self.plan.seconds() {
                return None;
            }
            if self.seq == self.plan.starts[self.second] && self.plan.count(self.second) > 0 {
                self.fill_second();
            } else {
                self.second += 1;
            }
        }
        let within = self.offsets.pop()?;
        let slot = Slot {
            seq: self.seq,
            // Whole seconds and the fraction apart, so rounding never moves a slot into the
            // next second.
            offset: Duration::from_secs(self.second as u64)
                + Duration::from_nanos(((within * 1e9) as u64).min(999_999_999)),
        };
        self.seq += 1;
        if self.offsets.is_empty() {
            self.second += 1;
        }
        Some(slot)
    }
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
    fn uniform_spreads_each_second_evenly() {
        let plan = Plan::new(&workload(&[4, 0, 2]), Arrivals::Uniform, None);
        let offsets: Vec<f64> = plan.slots().map(|s| s.offset.as_secs_f64()).collect();
        assert_eq!(offsets, [0.0, 0.25, 0.5, 0.75, 2.0, 2.5]);
        let seqs: Vec<u64> = plan.slots().map(|s| s.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
        assert_eq!(plan.total(), 6);
        assert_eq!(plan.second_of(3), 0);
        assert_eq!(plan.second_of(4), 2);
        assert_eq!(plan.second_of(5), 2);
    }

    #[test]
    fn cap_cuts_the_schedule_without_slowing_it() {
        let plan = Plan::new(&workload(&[4, 4, 4]), Arrivals::Uniform, Some(6));
        let offsets: Vec<f64> = plan.slots().map(|s| s.offset.as_secs_f64()).collect();
        assert_eq!(offsets, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
        assert_eq!(plan.count(2), 0);
    }

    #[test]
    fn poisson_is_seeded_and_roughly_on_rate() {
        let w = workload(&[200; 20]);
        let a: Vec<Slot> = Plan::new(&w, Arrivals::Poisson { seed: 7 }, None)
            .slots()
            .collect();
        let b: Vec<Slot> = Plan::new(&w, Arrivals::Poisson { seed: 7 }, None)
            .slots()
            .collect();
        let c = Plan::new(&w, Arrivals::Poisson { seed: 8 }, None);
        assert_eq!(a, b);
        assert_ne!(a.len() as u64, 0);
        assert!(a.len().abs_diff(4000) < 4 * 63, "{} arrivals", a.len()); // 4 sigma
        assert_ne!(c.slots().collect::<Vec<_>>(), a);
        // Inter-arrival gaps of a Poisson process have mean 1/rate and a coefficient of
        // variation of 1; an even spread would have 0.
        let gaps: Vec<f64> = a
            .windows(2)
            .map(|w| (w[1].offset - w[0].offset).as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.005).abs() < 0.0005, "mean gap {mean}");
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.1,
            "cv {}",
            var.sqrt() / mean
        );
    }

    proptest! {
        #[test]
        fn slots_are_ordered_complete_and_in_their_second(
            rates in proptest::collection::vec(0u32..50, 1..20),
            cap in proptest::option::of(0u64..400),
            poisson in any::<bool>(),
        ) {
            prop_assume!(rates.iter().any(|&r| r > 0));
            let arrivals = if poisson { Arrivals::Poisson { seed: 3 } } else { Arrivals::Uniform };
            let plan = Plan::new(&workload(&rates), arrivals, cap);
            let slots: Vec<Slot> = plan.slots().collect();
            prop_assert_eq!(slots.len() as u64, plan.total());
            if let Some(cap) = cap { prop_assert!(plan.total() <= cap); }
            for (i, slot) in slots.iter().enumerate() {
                prop_assert_eq!(slot.seq, i as u64);
                prop_assert_eq!(plan.second_of(slot.seq), slot.offset.as_secs() as usize);
            }
            prop_assert!(slots.windows(2).all(|w| w[0].offset <= w[1].offset));
        }
    }
}
