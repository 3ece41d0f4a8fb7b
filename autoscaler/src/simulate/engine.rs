//! The discrete-event model of the pipeline under one policy.
//!
//! Requests ([`super::arrivals`]) wait in one FIFO queue (the dispatcher's, bounded: beyond
//! its capacity they are refused). Each replica serves one request at a time. Replicas the
//! policy adds serve `coldStartSeconds` later and are billed from the moment they are asked
//! for; replicas it removes go newest-starting first, then idle ones, then busy ones, which
//! finish their request first. Every `interval` the policy sees what a real controller would:
//! the arrival rate and the ready replicas' utilisation over the last interval, the queue, the
//! replica counts. Every policy starts from the same warm state, as if it had been running at
//! the initial replica count.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::arrivals::{Arrivals, Job, ServiceTime};
use super::histogram::LogBins;
use super::workload::Workload;
use crate::policy::{Observation, Policy, PolicySpec};
use crate::telemetry::Telemetry;
use crate::tuning::Tuning;

/// Parameters of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    pub interval: Duration,
    pub cold_start: Duration,
    /// Requests that wait longer than this violate the SLA.
    pub sla_latency: Duration,
    pub service: ServiceTime,
    pub seed: u64,
    pub queue_capacity: usize,
    pub initial_replicas: u32,
}

/// The requests that arrived within one stretch of time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub start_seconds: f64,
    pub requests: u64,
    pub sla_violations: u64,
    pub rejected: u64,
    pub p95_latency_ms: f64,
}

/// Everything measured in one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub policy: PolicySpec,
    pub duration_seconds: f64,
    /// Replica-seconds paid for, starting replicas included, up to the end of the workload.
    pub pod_seconds: f64,
    pub requests: u64,
    pub rejected: u64,
    /// Served requests that waited longer than the SLA.
    pub sla_violations: u64,
    /// Latency (queue wait + service) of served requests, in microseconds.
    pub latency: Histogram<u64>,
    pub scale_events: u32,
    pub peak_replicas: u32,
    /// (time, replicas) at the start and after each scaling.
    pub replicas: Vec<(f64, u32)>,
    pub buckets: Vec<Bucket>,
    pub bucket_seconds: f64,
}

/// Runs `policy` over `workload`.
pub fn run(workload: &Workload, policy: PolicySpec, tuning: &Tuning, p: &SimParams) -> RunResult {
    Model::new(workload, policy, tuning, p).run(workload)
}

/// An `f64` time with a total order, for the completion heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Time(f64);

impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

struct Model<'a> {
    tuning: &'a Tuning,
    p: &'a SimParams,
    spec: PolicySpec,
    policy: Policy,
    origin: Instant,
    end: f64,
    /// Ready times of replicas still starting, in order.
    starting: VecDeque<f64>,
    idle: u32,
    /// Completion times of busy replicas (draining ones included).
    busy: BinaryHeap<Reverse<Time>>,
    /// Busy replicas to remove at their next completion.
    draining: u32,
    queue: VecDeque<Job>,
    /// Integrals of replica counts over time, up to `last` (capped at the workload's end).
    last: f64,
    pod_seconds: f64,
    busy_seconds: f64,
    serving_seconds: f64,
    /// Values at the start of the current decision window.
    window: (u64, f64, f64),
    arrivals: u64,
    rejected: u64,
    violations: u64,
    latency: Histogram<u64>,
    scale_events: u32,
    peak: u32,
    replicas: Vec<(f64, u32)>,
    bucket_seconds: f64,
    buckets: Vec<Bucket>,
    /// Latencies of the bucket whose requests are being started now.
    open_bucket: usize,
    bucket_latency: LogBins,
}

impl<'a> Model<'a> {
    fn new(workload: &Workload, spec: PolicySpec, tuning: &'a Tuning, p: &'a SimParams) -> Self {
        let end = workload.seconds() as f64;
        let initial = match spec {
            PolicySpec::Static(n) => n,
            _ => p.initial_replicas,
        };
        // About 400 points for the plot, at least 10 s each.
        let bucket_seconds = (end / 400.0).ceil().max(10.0);
        let buckets = (0..(end / bucket_seconds).ceil() as usize)
            .map(|i| Bucket {
                start_seconds: i as f64 * bucket_seconds,
                requests: 0,
                sla_violations: 0,
                rejected: 0,
                p95_latency_ms: 0.0,
            })
            .collect();
        let origin = Instant::now();
        let mut policy = Policy::new(spec, tuning, p.interval);
        policy.prime(origin, initial);
        Self {
            tuning,
            p,
            spec,
            policy,
            origin,
            end,
            starting: VecDeque::new(),
            idle: initial,
            busy: BinaryHeap::with_capacity(initial as usize + 16),
            draining: 0,
            queue: VecDeque::new(),
            last: 0.0,
            pod_seconds: 0.0,
            busy_seconds: 0.0,
            serving_seconds: 0.0,
            window: (0, 0.0, 0.0),
            arrivals: 0,
            rejected: 0,
            violations: 0,
            latency: histogram(),
            scale_events: 0,
            peak: initial,
            replicas: vec![(0.0, initial)],
            bucket_seconds,
            buckets,
            open_bucket: 0,
            bucket_latency: LogBins::new(),
        }
    }

    fn run(mut self, workload: &Workload) -> RunResult {
        let mut arrivals = Arrivals::new(workload, &self.p.service, self.p.seed);
        let interval = self.p.interval.as_secs_f64();
        let mut next_arrival = arrivals.next();
        let mut next_tick = interval;
        loop {
            let t_arrival = next_arrival.map_or(f64::INFINITY, |j| j.arrival);
            let t_done = self.busy.peek().map_or(f64::INFINITY, |r| r.0.0);
            let t_ready = self.starting.front().copied().unwrap_or(f64::INFINITY);
            let t_tick = if next_tick <= self.end {
                next_tick
            } else {
                f64::INFINITY
            };
            // On ties: free replicas first, so that an arrival at the same instant finds them.
            if t_done.is_finite() && t_done <= t_arrival.min(t_ready).min(t_tick) {
                self.advance(t_done);
                self.complete(t_done);
            } else if t_ready.is_finite() && t_ready <= t_arrival.min(t_tick) {
                self.advance(t_ready);
                self.starting.pop_front();
                self.take_work(t_ready);
            } else if t_tick.is_finite() && t_tick <= t_arrival {
                self.advance(t_tick);
                self.tick(t_tick, interval);
                next_tick += interval;
            } else if let Some(job) = next_arrival {
                self.advance(job.arrival);
                self.arrive(job);
                next_arrival = arrivals.next();
            } else {
                break;
            }
        }
        self.finish()
    }

    fn advance(&mut self, t: f64) {
        let t = t.min(self.end);
        if t > self.last {
            let dt = t - self.last;
            let busy = self.busy.len() as f64;
            let serving = busy + f64::from(self.idle);
            self.pod_seconds += (serving + self.starting.len() as f64) * dt;
            self.busy_seconds += busy * dt;
            self.serving_seconds += serving * dt;
            self.last = t;
        }
    }

    fn arrive(&mut self, job: Job) {
        self.arrivals += 1;
        let bucket = self.bucket_of(job.arrival);
        self.buckets[bucket].requests += 1;
        if self.idle > 0 {
            // An idle replica implies an empty queue: start at once.
            self.idle -= 1;
            self.start(job, job.arrival);
        } else if self.queue.len() >= self.p.queue_capacity {
            self.rejected += 1;
            self.buckets[bucket].rejected += 1;
        } else {
            self.queue.push_back(job);
        }
    }

    /// The earliest busy replica finishes at `t`.
    fn complete(&mut self, t: f64) {
        if self.draining > 0 {
            self.draining -= 1;
            self.busy.pop();
        } else if let Some(job) = self.queue.pop_front() {
            // It takes the next request at once: one sift of the heap instead of two.
            let done = self.begin(job, t);
            if let Some(mut top) = self.busy.peek_mut() {
                *top = Reverse(Time(done));
            }
        } else {
            self.busy.pop();
            self.idle += 1;
        }
    }

    /// A replica is ready at `t`: give it the head of the queue, or let it idle.
    fn take_work(&mut self, t: f64) {
        match self.queue.pop_front() {
            Some(job) => self.start(job, t),
            None => self.idle += 1,
        }
    }

    fn start(&mut self, job: Job, t: f64) {
        let done = self.begin(job, t);
        self.busy.push(Reverse(Time(done)));
    }

    /// Records a request starting service at `t`; returns when it completes.
    fn begin(&mut self, job: Job, t: f64) -> f64 {
        let wait = t - job.arrival;
        let micros = (((wait + job.service) * 1e6) as u64).max(1);
        self.latency.saturating_record(micros);
        // Jobs start in arrival order (FIFO), so buckets close one after another.
        let bucket = self.bucket_of(job.arrival);
        if bucket != self.open_bucket {
            self.close_bucket();
            self.open_bucket = bucket;
        }
        self.bucket_latency.record(micros);
        if wait > self.p.sla_latency.as_secs_f64() {
            self.violations += 1;
            self.buckets[bucket].sla_violations += 1;
        }
        t + job.service
    }

    fn bucket_of(&self, t: f64) -> usize {
        ((t / self.bucket_seconds) as usize).min(self.buckets.len().saturating_sub(1))
    }

    fn close_bucket(&mut self) {
        if let Some(b) = self.buckets.get_mut(self.open_bucket)
            && self.bucket_latency.total > 0
        {
            b.p95_latency_ms = self.bucket_latency.quantile(0.95) / 1000.0;
        }
        self.bucket_latency.reset();
    }

    /// One decision, with what a controller would have measured over the last interval.
    fn tick(&mut self, t: f64, interval: f64) {
        let busy = self.busy.len() as u32;
        let serving = busy + self.idle - self.draining;
        let spec = serving + self.starting.len() as u32;
        let (arrivals0, busy0, serving0) = self.window;
        let serving_time = self.serving_seconds - serving0;
        let now = self.origin + Duration::from_secs_f64(t);
        let telemetry = Telemetry {
            arrival_rate: Some((self.arrivals - arrivals0) as f64 / interval),
            queue_length: Some(self.queue.len() as f64),
            in_flight: Some(f64::from(busy)),
            utilisation: (serving_time > 0.0).then(|| (self.busy_seconds - busy0) / serving_time),
            service_rate_per_pod: None,
            ready_replicas: Some(f64::from(serving)),
            ..Telemetry::empty(now)
        };
        self.window = (self.arrivals, self.busy_seconds, self.serving_seconds);
        let observation = Observation {
            now,
            current_replicas: spec,
            telemetry: Some(telemetry),
            fresh: true,
            scale_down_allowed: true,
        };
        let desired = self.policy.decide(&observation, self.tuning).replicas;
        if desired != spec {
            self.scale(t, spec, desired);
            self.policy.on_scaled(now, spec, desired);
            self.scale_events += 1;
            self.peak = self.peak.max(desired);
            self.replicas.push((t, desired));
        }
    }

    fn scale(&mut self, t: f64, from: u32, to: u32) {
        if to > from {
            let ready_at = t + self.p.cold_start.as_secs_f64();
            self.starting.extend((from..to).map(|_| ready_at));
            return;
        }
        let mut remove = from - to;
        while remove > 0 && self.starting.pop_back().is_some() {
            remove -= 1;
        }
        let idle = remove.min(self.idle);
        self.idle -= idle;
        remove -= idle;
        let active = self.busy.len() as u32 - self.draining;
        self.draining += remove.min(active);
    }

    fn finish(mut self) -> RunResult {
        self.advance(self.end);
        self.close_bucket();
        RunResult {
            policy: self.spec,
            duration_seconds: self.end,
            pod_seconds: self.pod_seconds,
            requests: self.arrivals,
            rejected: self.rejected,
            sla_violations: self.violations,
            latency: self.latency,
            scale_events: self.scale_events,
            peak_replicas: self.peak,
            replicas: self.replicas,
            buckets: self.buckets,
            bucket_seconds: self.bucket_seconds,
        }
    }
}
