//! Requests: Poisson arrivals at a rate constant within each second of the workload, each
//! with its service time.
//!
//! The arrival and service-time streams are seeded separately and drawn in arrival order, so
//! every policy sees exactly the same requests (common random numbers: differences between
//! policies are not sampling noise).

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Exp1};

use super::workload::Workload;

/// How long one request occupies a replica.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceTime {
    /// Exponential with this rate (requests/s): the M/M/k assumption.
    Exponential { rate: f64 },
    /// Resampled from measured service times (seconds).
    Empirical(Arc<[f64]>),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Job {
    pub(super) arrival: f64,
    pub(super) service: f64,
}

/// Poisson arrivals, piecewise-constant rate per second; each with its service time.
pub(super) struct Arrivals<'a> {
    rates: &'a [f64],
    second: usize,
    t: f64,
    arrival_rng: SmallRng,
    service_rng: SmallRng,
    service: &'a ServiceTime,
    exp_service: Option<Exp<f64>>,
}

impl<'a> Arrivals<'a> {
    pub(super) fn new(workload: &'a Workload, service: &'a ServiceTime, seed: u64) -> Self {
        let exp_service = match service {
            ServiceTime::Exponential { rate } => Exp::new(*rate).ok(),
            ServiceTime::Empirical(_) => None,
        };
        Self {
            rates: workload.rates(),
            second: 0,
            t: 0.0,
            arrival_rng: SmallRng::seed_from_u64(seed),
            service_rng: SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            service,
            exp_service,
        }
    }

    pub(super) fn next(&mut self) -> Option<Job> {
        while self.second < self.rates.len() {
            let rate = self.rates[self.second];
            if rate > 0.0 {
                // Exponential gap (ziggurat, no logarithm); memorylessness makes restarting
                // at each second boundary exact.
                let gap: f64 = Exp1.sample(&mut self.arrival_rng);
                self.t += gap / rate;
                if self.t < (self.second + 1) as f64 {
                    let service = self.service_time();
                    return Some(Job {
                        arrival: self.t,
                        service,
                    });
                }
            }
            self.second += 1;
            self.t = self.second as f64;
        }
        None
    }

    fn service_time(&mut self) -> f64 {
        match (self.service, &self.exp_service) {
            (_, Some(exp)) => exp.sample(&mut self.service_rng),
            (ServiceTime::Empirical(samples), None) if !samples.is_empty() => {
                samples[self.service_rng.random_range(0..samples.len())]
            }
            _ => 0.0,
        }
    }
}
