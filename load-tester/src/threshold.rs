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

use crate::stats::{Counter, Distribution, Statistic, Stats};

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

/// What a condition measures: one enum for every name `--fail-on` knows, built from the
/// `stats.json` names of [`Statistic`], [`Distribution`] and [`Counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    /// `[distribution.]stat`; the distribution defaults to `latency`.
    Latency {
        distribution: Distribution,
        stat: Statistic,
    },
    Counter(Counter),
    FailureRate,
}

impl Metric {
    const FAILURE_RATE: &'static str = "failureRate";

    /// `failureRate`, a counter, or `[distribution.]stat`.
    fn from_name(name: &str) -> Option<Self> {
        if name == Self::FAILURE_RATE {
            return Some(Metric::FailureRate);
        }
        if let Some(counter) = Counter::from_name(name) {
            return Some(Metric::Counter(counter));
        }
        let (distribution, stat) = name.split_once('.').unwrap_or(("latency", name));
        Some(Metric::Latency {
            distribution: Distribution::from_name(distribution)?,
            stat: Statistic::from_name(stat)?,
        })
    }

    /// The message for a name that is none of the above, listing every known one.
    fn unknown(text: &str, name: &str) -> String {
        format!(
            "{text:?}: unknown metric {name:?}; expected [distribution.]stat with stat in \
             {:?} and distribution in {:?}, a counter in {:?}, or {}",
            Statistic::names(),
            Distribution::names(),
            Counter::names(),
            Self::FAILURE_RATE,
        )
    }

    /// Reads the threshold's value: a duration in ms, a count, or a ratio (`0.01`, `1%`).
    fn parse_value(self, value: &str) -> Option<f64> {
        match self {
            Metric::Latency { .. } => parse_millis(value),
            Metric::Counter(_) => value.parse::<f64>().ok(),
            Metric::FailureRate => match value.strip_suffix('%') {
                Some(percent) => percent.parse::<f64>().ok().map(|p| p / 100.0),
                None => value.parse::<f64>().ok(),
            },
        }
    }

    /// The observed value; `None` for a distribution without samples.
    fn observe(self, stats: &Stats) -> Option<f64> {
        match self {
            Metric::Latency { distribution, stat } => {
                stats.latency(distribution).map(|summary| summary.get(stat))
            }
            Metric::Counter(counter) => Some(stats.counter(counter) as f64),
            Metric::FailureRate => Some(stats.failure_ratio()),
        }
    }

    /// An observed value as a violation shows it.
    fn format(self, observed: f64) -> String {
        match self {
            Metric::Latency { .. } => format!("{observed:.1}ms"),
            Metric::FailureRate => format!("{:.2}%", observed * 100.0),
            Metric::Counter(_) => format!("{observed}"),
        }
    }
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

impl Threshold {
    /// Parses a condition (the clap value parser of `--fail-on`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (at, op, len) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .iter()
            .find_map(|&(symbol, op)| compact.find(symbol).map(|at| (at, op, symbol.len())))
            .ok_or_else(|| format!("{text:?}: expected <metric><op><value> with op > >= < <="))?;
        let (name, value) = (&compact[..at], &compact[at + len..]);
        let metric = Metric::from_name(name).ok_or_else(|| Metric::unknown(text, name))?;
        let value = metric
            .parse_value(value)
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
        let Some(observed) = self.metric.observe(stats) else {
            // A distribution without samples cannot show it is within bounds.
            return Some(Violation {
                threshold: self.text.clone(),
                observed: "no samples".into(),
            });
        };
        self.op.holds(observed, self.value).then(|| Violation {
            threshold: self.text.clone(),
            observed: self.metric.format(observed),
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
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

    #[test]
    fn unknown_metrics_list_every_known_name() {
        let err = Threshold::parse("p98>1ms").unwrap_err();
        assert_eq!(
            err,
            "\"p98>1ms\": unknown metric \"p98\"; expected [distribution.]stat with stat in \
             [\"min\", \"mean\", \"p50\", \"p90\", \"p95\", \"p99\", \"p999\", \"max\"] and \
             distribution in [\"latency\", \"queueWait\", \"inference\", \"enqueue\", \
             \"scheduleLag\"], a counter in [\"sent\", \"accepted\", \"rejected\", \
             \"sendErrors\", \"completed\", \"succeeded\", \"failed\", \"missing\", \
             \"duplicates\", \"unmatched\"], or failureRate"
        );
    }

    #[test]
    fn metric_names_round_trip() {
        for &stat in Statistic::ALL {
            assert_eq!(Statistic::from_name(stat.name()), Some(stat));
        }
        for &distribution in Distribution::ALL {
            assert_eq!(
                Distribution::from_name(distribution.name()),
                Some(distribution)
            );
        }
        for &counter in Counter::ALL {
            let metric = Metric::from_name(counter.name());
            assert_eq!(metric, Some(Metric::Counter(counter)));
        }
        assert_eq!(Metric::from_name("failureRate"), Some(Metric::FailureRate));
    }
}
