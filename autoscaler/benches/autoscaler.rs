//! Speed of the decision core and the simulator, printed as plain figures.
//!
//! `cargo bench -p autoscaler`. Each figure is the median of several timed rounds; ratios
//! compare against a baseline measured in the same run, and the simulator also reports the
//! thread's CPU time (the machine is shared and noisy).

// A bench is a program whose failure is a panic.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use autoscaler::policy::{Observation, Policy, PolicySpec};
use autoscaler::queueing::{Load, erlang_c};
use autoscaler::simulate::{ServiceTime, Shape, SimParams, engine, simulate, warm_start};
use autoscaler::telemetry::Telemetry;
use autoscaler::tuning::Tuning;

/// Median time per call of `f`, over `rounds` rounds of `calls` calls.
fn median_per_call(rounds: usize, calls: usize, mut f: impl FnMut(usize)) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for i in 0..calls {
                f(i);
            }
            start.elapsed() / calls as u32
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

/// Erlang C by the plain Erlang-B recursion from B(0): O(k), the usual stable method.
fn erlang_c_full_recursion(k: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for n in 1..=k {
        b = a * b / (f64::from(n) + a * b);
    }
    let rho = a / f64::from(k);
    b / (1.0 - rho * (1.0 - b))
}

/// Erlang C as the textbook sum in log space (log-sum-exp): O(k) logs and exps.
fn erlang_c_log_sum(k: u32, a: f64) -> f64 {
    let ln_a = a.ln();
    let mut ln_fact = 0.0;
    let mut terms = Vec::with_capacity(k as usize);
    for i in 0..k {
        if i > 0 {
            ln_fact += f64::from(i).ln();
        }
        terms.push(f64::from(i) * ln_a - ln_fact);
    }
    ln_fact += f64::from(k).ln();
    let ln_t = f64::from(k) * ln_a - ln_fact + (f64::from(k) / (f64::from(k) - a)).ln();
    let max = terms.iter().copied().fold(ln_t, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    let t = (ln_t - max).exp();
    t / (sum + t)
}

fn erlang() {
    println!("## Erlang C");
    for (k, rho) in [(100u32, 0.9), (1_000, 0.95), (10_000, 0.95), (10_000, 0.99)] {
        let a = rho * f64::from(k);
        let ours = median_per_call(9, 2_000, |_| {
            black_box(erlang_c(black_box(k), black_box(a)));
        });
        let full = median_per_call(9, 200, |_| {
            black_box(erlang_c_full_recursion(black_box(k), black_box(a)));
        });
        let logs = median_per_call(5, 20, |_| {
            black_box(erlang_c_log_sum(black_box(k), black_box(a)));
        });
        println!(
            "k = {k:>6}, ρ = {rho}: {:>8.2} µs (full recursion {:>8.2} µs, ×{:.1}; log-space sum {:>9.2} µs, ×{:.0})",
            micros(ours),
            micros(full),
            full.as_secs_f64() / ours.as_secs_f64(),
            micros(logs),
            logs.as_secs_f64() / ours.as_secs_f64(),
        );
    }
    let sizing = median_per_call(9, 200, |_| {
        black_box(Load::new(9_500.0, 1.0).required_servers(0.1, 0.01, 100_000));
    });
    println!(
        "required servers for λ/μ = 9,500 (answer ≈ 9,700): {:.2} µs",
        micros(sizing)
    );
}

fn decisions() {
    println!("\n## Decision time (predictive policy: forecast + Erlang-C sizing + controls)");
    let mut tuning = Tuning::default();
    tuning.decision.service_rate_per_pod = 1.0;
    tuning.decision.max_replicas = 1_000;
    let origin = Instant::now();
    for rate in [10.0, 100.0, 600.0] {
        let mut policy = Policy::new(PolicySpec::Predictive, &tuning, Duration::from_secs(15));
        let mut fixed = Policy::new(PolicySpec::Static(3), &tuning, Duration::from_secs(15));
        let observe = |i: usize| Observation {
            now: origin + Duration::from_secs(15 * i as u64),
            current_replicas: 500,
            telemetry: Some(Telemetry {
                // ±5 % of noise so that the forecaster and the sizing keep working.
                arrival_rate: Some(rate * (1.0 + 0.05 * ((i % 7) as f64 - 3.0) / 3.0)),
                queue_length: Some(0.0),
                ..Telemetry::empty(origin)
            }),
            fresh: true,
            scale_down_allowed: true,
        };
        let mut replicas = 0;
        let t = median_per_call(9, 2_000, |i| {
            replicas = black_box(policy.decide(&observe(i), &tuning)).replicas;
        });
        let base = median_per_call(9, 2_000, |i| {
            black_box(fixed.decide(&observe(i), &tuning));
        });
        println!(
            "λ = {rate:>4}/s, μ = 1/s (k ≈ {replicas:>4}): {:>6.2} µs per decision (static policy, same inputs: {:.2} µs)",
            micros(t),
            micros(base)
        );
    }
}

fn simulator() {
    println!("\n## Simulator: 24 h diurnal trace at 1 s resolution");
    let tuning = Tuning::default();
    let workload = Shape::Diurnal.generate(1);
    let params = SimParams {
        interval: Duration::from_secs(15),
        cold_start: tuning.decision.cold_start,
        sla_latency: tuning.decision.sla_latency,
        service: ServiceTime::Exponential {
            rate: tuning.decision.service_rate_per_pod,
        },
        seed: 1,
        queue_capacity: 10_000,
        initial_replicas: warm_start(&workload, &tuning),
    };
    for spec in [
        PolicySpec::Static(20),
        PolicySpec::Hpa,
        PolicySpec::Queue,
        PolicySpec::Predictive,
    ] {
        let mut requests = 0;
        let mut cpu = Vec::new();
        let t = median_per_call(3, 1, |_| {
            let before = thread_cpu();
            requests = engine::run(&workload, spec, &tuning, &params).requests;
            if let (Some(a), Some(b)) = (before, thread_cpu()) {
                cpu.push(b - a);
            }
        });
        cpu.sort();
        let cpu = cpu.get(cpu.len() / 2).copied();
        println!(
            "{:<11} {:>6.0} ms wall, {} CPU, for {} requests ({:.0} ns CPU per request)",
            spec.to_string(),
            t.as_secs_f64() * 1000.0,
            cpu.map_or("?".into(), |c| format!(
                "{:.0} ms",
                c.as_secs_f64() * 1000.0
            )),
            requests,
            cpu.unwrap_or(t).as_secs_f64() * 1e9 / requests as f64,
        );
    }
    let all = [
        PolicySpec::Hpa,
        PolicySpec::Queue,
        PolicySpec::Static(20),
        PolicySpec::Predictive,
    ];
    let t = median_per_call(3, 1, |_| {
        black_box(simulate(&workload, &all, &tuning, &params));
    });
    println!(
        "all four policies in one call ({} threads): {:.0} ms",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        t.as_secs_f64() * 1000.0
    );
}

/// CPU time of the calling thread (Linux `/proc/thread-self/schedstat`): on a shared machine
/// wall-clock time also counts the time other processes held the CPU.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "load average {} on {cores} cores\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    erlang();
    decisions();
    simulator();
}
