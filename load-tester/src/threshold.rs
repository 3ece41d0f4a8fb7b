//! `--fail-on` conditions: `p99>500ms`, `enqueue.p99>=50ms`, `failed>0`, `failureRate>1%`.
//!
//! Grammar: `<metric><op><value>` with `op` one of `> >= < <=`.
//! - Latency statistics `min mean p50 p90 p95 p99 p999 max`, optionally prefixed by the
//!   distribution (`latency.` is the default; `queueWait.`, `inference.`, `enqueue.`,
//!   `scheduleLag.`). The value is a duration (`500ms`, `1.5s`, `250us`; a bare number is ms).
//!   A distribution without samples cannot show it is within bounds: that counts as a violation.
//! - Counters of `stats.json` (`failed`, `missing`, `rejected`, `sendErrors`, ...): a number.
//! - `failureRate`: (rejected + send errors + failed + missing) / totalRequests, as `0.01`
//!   or `1%`.

use std::fmt;

use crate::stats::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Lt => left < right,
            Op::Le => left <= right,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Metric {
    /// Distribution name as in `stats.json` without `Ms`, and the statistic.
    Latency {
        distribution: String,
        stat: String,
    },
    Counter(String),
    FailureRate,
}

/// One `--fail-on` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    metric: Metric,
    op: Op,
    /// Milliseconds for latencies, a count or a ratio otherwise.
    value: f64,
}

/// A condition that held.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub threshold: String,
    /// What was measured, formatted; `no samples` when there was nothing to measure.
    pub observed: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (observed {})", self.threshold, self.observed)
    }
}

const STATS: [&str; 8] = ["min", "mean", "p50", "p90", "p95", "p99", "p999", "max"];
const DISTRIBUTIONS: [&str; 5] = [
    "latency",
    "queueWait",
    "inference",
    "enqueue",
    "scheduleLag",
];
const COUNTERS: [&str; 10] = [
    "sent",
    "accepted",
    "rejected",
    "sendErrors",
    "completed",
    "succeeded",
    "failed",
    "missing",
    "duplicates",
    "unmatched",
];

impl Threshold {
    /// Parses a condition (the clap value parser of `--fail-on`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (at, op, len) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .iter()
            .find_map(|&(symbol, op)| compact.find(symbol).map(|at| (at, op, symbol.len())))
            .ok_or_else(|| format!("{text:?}: expected <metric><op><value> with op > >= < <="))?;
        let (name, value) = (&compact[..at], &compact[at + len..]);
        let metric = parse_metric(name).ok_or_else(|| {
            format!(
                "{text:?}: unknown metric {name:?}; expected [distribution.]stat with stat in \
                 {STATS:?} and distribution in {DISTRIBUTIONS:?}, a counter in {COUNTERS:?}, or \
                 failureRate"
            )
        })?;
        let value = match metric {
            Metric::Latency { .. } => parse_millis(value),
            Metric::Counter(_) => value.parse::<f64>().ok(),
            Metric::FailureRate => match value.strip_suffix('%') {
                Some(percent) => percent.parse::<f64>().ok().map(|p| p / 100.0),
                None => value.parse::<f64>().ok(),
            },
        }
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{text:?}: cannot read the value {value:?}"))?;
        Ok(Self {
            text: compact,
            metric,
            op,
            value,
        })
    }

    /// `Some` when the condition holds for these stats (the run should fail).
    pub fn check(&self, stats: &Stats) -> Option<Violation> {
        let observed = match &self.metric {
            Metric::Latency { distribution, stat } => match stats.latency(distribution).flatten() {
                Some(summary) => summary.get(stat),
                None => {
                    return Some(Violation {
                        threshold: self.text.clone(),
                        observed: "no samples".into(),
                    });
                }
            },
            Metric::Counter(name) => stats.counter(name).map(|c| c as f64),
            Metric::FailureRate => Some(stats.failure_ratio()),
        }?;
        self.op.holds(observed, self.value).then(|| Violation {
            threshold: self.text.clone(),
            observed: match self.metric {
                Metric::Latency { .. } => format!("{observed:.1}ms"),
                Metric::FailureRate => format!("{:.2}%", observed * 100.0),
                Metric::Counter(_) => format!("{observed}"),
            },
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_metric(name: &str) -> Option<Metric> {
    if name == "failureRate" {
        return Some(Metric::FailureRate);
    }
    if COUNTERS.contains(&name) {
        return Some(Metric::Counter(name.to_owned()));
    }
    let (distribution, stat) = name.split_once('.').unwrap_or(("latency", name));
    (DISTRIBUTIONS.contains(&distribution) && STATS.contains(&stat)).then(|| Metric::Latency {
        distribution: distribution.to_owned(),
        stat: stat.to_owned(),
    })
}

/// A duration in milliseconds: `500ms`, `1.5s`, `250us`, or a bare number of ms.
fn parse_millis(value: &str) -> Option<f64> {
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "us" | "µs" => 0.001,
        _ => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::LatencySummary;

    fn stats() -> Stats {
        let summary = |p99| LatencySummary {
            count: 10,
            min: 1.0,
            mean: 2.0,
            p50: 2.0,
            p90: 3.0,
            p95: 4.0,
            p99,
            p999: p99,
            max: p99,
        };
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 1, "runId": "r", "phase": "done", "startedAtMs": 0.0,
            "dispatcherUrl": "http://d/", "arrivals": "uniform", "workloadSeconds": 1,
            "planned": 100, "totalRequests": 100, "sent": 100, "accepted": 98, "rejected": 2,
            "sendErrors": 0, "completed": 97, "succeeded": 96, "failed": 1, "missing": 1,
            "duplicates": 0, "unmatched": 0, "concurrencyCapHits": 0,
            "failuresByCode": {"queue_full": 2, "upstream_timeout": 1},
            "durationSeconds": 1.0, "throughputPerSecond": 96.0,
            "latencyMs": summary(600.0), "queueWaitMs": null, "inferenceMs": summary(20.0),
            "enqueueMs": summary(3.0), "scheduleLagMs": summary(0.2), "missingIdsSample": ["r-5"]
        }))
        .unwrap()
    }

    #[test]
    fn conditions_hold_or_not() {
        let stats = stats();
        let cases: &[(&str, bool)] = &[
            ("p99>500ms", true),
            ("p99 > 0.7s", false),
            ("latency.p99>=600", true),
            ("inference.p99<20ms", false),
            ("inference.p99<=20ms", true),
            ("scheduleLag.p99>1ms", false),
            ("scheduleLag.max>100us", true),
            ("queueWait.p99>1s", true), // no samples: cannot prove it is fine
            ("failed>0", true),
            ("sendErrors>0", false),
            ("failureRate>3%", true),
            ("failureRate>0.05", false),
        ];
        for (text, violated) in cases {
            let t = Threshold::parse(text).unwrap();
            assert_eq!(t.check(&stats).is_some(), *violated, "{text}");
        }
        let v = Threshold::parse("p99>500ms")
            .unwrap()
            .check(&stats)
            .unwrap();
        assert_eq!(v.to_string(), "p99>500ms (observed 600.0ms)");
    }

    #[test]
    fn bad_conditions_are_explained() {
        for text in [
            "p99",
            "p98>1ms",
            "p99>fast",
            "bogus.p99>1",
            "failed>x",
            "p99>5m",
        ] {
            assert!(Threshold::parse(text).is_err(), "{text}");
        }
    }
}
