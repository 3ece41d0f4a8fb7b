//! The numbers of a report: `stats.json`, the summary table and the `--fail-on` checks all
//! read this one structure. The schema is documented field by field in the crate README.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use harness_core::sync::lock;

use crate::delivery::DeliveryStats;
use crate::journal::JournalStats;
use crate::schedule::ArrivalProcess;
use crate::store::{Phase, RunState};
use crate::target::TargetInfo;

/// Bumped on any incompatible change to [`Stats`].
pub const SCHEMA_VERSION: u32 = 1;

/// Ids of missing requests listed in `stats.json`, to start an investigation from.
const MISSING_IDS_SAMPLE: usize = 20;

/// Declares an enum of `stats.json` names from one list: the variants, their stable names,
/// [`ALL`](Statistic::ALL) in the order error messages list them, parsing and `Display`.
macro_rules! stats_names {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[doc = concat!("`", $text, "`")] $variant,)+
        }

        impl $name {
            /// Every value, in the order of `stats.json`.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable name, as in `stats.json` and `--fail-on`.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value of a name (case-sensitive, like the JSON keys).
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.name() == name)
            }

            /// Every name, for error messages.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|value| value.name()).collect()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

stats_names! {
    /// A statistic of a [`LatencySummary`].
    Statistic {
        Min = "min",
        Mean = "mean",
        P50 = "p50",
        P90 = "p90",
        P95 = "p95",
        P99 = "p99",
        P999 = "p999",
        Max = "max",
    }
}

stats_names! {
    /// A latency object of [`Stats`], by its `stats.json` name without the `Ms` suffix.
    Distribution {
        Latency = "latency",
        QueueWait = "queueWait",
        Inference = "inference",
        Enqueue = "enqueue",
        ScheduleLag = "scheduleLag",
    }
}

stats_names! {
    /// A counter of [`Stats`], by its `stats.json` name.
    Counter {
        Sent = "sent",
        Accepted = "accepted",
        Rejected = "rejected",
        SendErrors = "sendErrors",
        Completed = "completed",
        Succeeded = "succeeded",
        Failed = "failed",
        Missing = "missing",
        Duplicates = "duplicates",
        Unmatched = "unmatched",
    }
}

/// Distribution of one duration, in milliseconds. Percentiles come from an HDR histogram with
/// 3 significant digits: each is within 0.1% of the exact value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencySummary {
    /// From a histogram of microseconds; `None` when it is empty.
    pub fn from_micros(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |quantile: f64| ms(h.value_at_quantile(quantile));
        Some(Self {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(h.max()),
        })
    }

    /// One statistic of the distribution.
    pub fn get(&self, stat: Statistic) -> f64 {
        match stat {
            Statistic::Min => self.min,
            Statistic::Mean => self.mean,
            Statistic::P50 => self.p50,
            Statistic::P90 => self.p90,
            Statistic::P95 => self.p95,
            Statistic::P99 => self.p99,
            Statistic::P999 => self.p999,
            Statistic::Max => self.max,
        }
    }
}

/// `stats.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub schema_version: u32,
    pub run_id: String,
    pub phase: Phase,
    /// Wall-clock time of the schedule's offset zero, Unix epoch ms.
    pub started_at_ms: f64,
    pub dispatcher_url: String,
    /// What the requests went to (`kind` dispatcher, infer or v2, `url`, `modelName`).
    #[serde(default)]
    pub target: TargetInfo,
    pub arrivals: ArrivalProcess,
    pub workload_seconds: u64,
    /// Requests the schedule planned (workload total, capped by `maxImages`).
    pub planned: u64,
    /// Requests the user expected; `missing` is counted against it.
    pub total_requests: u64,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub send_errors: u64,
    pub completed: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub missing: u64,
    /// `missing` by reason (`no record`, `dispatcher restarted`, `load tester stopped`), every
    /// reason present; the values add up to `missing`.
    #[serde(default)]
    pub missing_by_reason: BTreeMap<String, u64>,
    pub duplicates: u64,
    pub unmatched: u64,
    /// Dispatcher restarts seen during the run (a new instance id).
    #[serde(default)]
    pub dispatcher_restarts: u64,
    pub concurrency_cap_hits: u64,
    pub failures_by_code: BTreeMap<String, u64>,
    /// Successful requests by the top-1 label of their answer (at most 64 labels, then
    /// `other`): a check that the model really ran.
    #[serde(default)]
    pub labels: BTreeMap<String, u64>,
    pub duration_seconds: f64,
    pub throughput_per_second: f64,
    pub latency_ms: Option<LatencySummary>,
    pub queue_wait_ms: Option<LatencySummary>,
    pub inference_ms: Option<LatencySummary>,
    pub enqueue_ms: Option<LatencySummary>,
    pub schedule_lag_ms: Option<LatencySummary>,
    pub missing_ids_sample: Vec<String>,
    /// Which paths brought the records, and what the dispatcher dropped.
    #[serde(default)]
    pub delivery: DeliveryStats,
    /// The run journal (`journal.jsonl`): its size, lines lost, and whether this report was
    /// rebuilt from it. Absent for runs without a journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalStats>,
}

impl Stats {
    /// The stats of a run as they stand; `total_requests` defaults to the requests sent.
    pub fn of_run(run: &RunState, total_requests: Option<u64>) -> Self {
        let phase = run.phase();
        // Before the ledger's lock, which `delivery` takes too.
        let delivery = run.delivery();
        let ledger = lock(&run.ledger);
        let c = ledger.counts();
        let h = ledger.histograms();
        let total_requests = total_requests.unwrap_or(c.sent);
        // A request whose fate is known (a record, a rejection, a send error) is not missing;
        // every other expected request is, including ones never sent.
        let known = c.completed + c.rejected + c.send_errors;
        let missing = total_requests.saturating_sub(known);
        let duration = ledger.last_event().as_secs_f64();
        Self {
            schema_version: SCHEMA_VERSION,
            run_id: run.info.run_id.clone(),
            phase,
            started_at_ms: ledger.start_unix_ms(),
            dispatcher_url: run.info.dispatcher_url.clone(),
            target: run.info.target.clone(),
            arrivals: run.info.arrivals,
            workload_seconds: ledger.plan().seconds() as u64,
            planned: ledger.plan().total(),
            total_requests,
            sent: c.sent,
            accepted: c.accepted,
            rejected: c.rejected,
            send_errors: c.send_errors,
            completed: c.completed,
            succeeded: c.succeeded,
            failed: c.failed,
            missing,
            missing_by_reason: ledger.missing_by_reason(missing),
            duplicates: c.duplicates,
            unmatched: c.unmatched,
            dispatcher_restarts: ledger.dispatcher_restarts(),
            concurrency_cap_hits: c.cap_hits,
            failures_by_code: ledger.failures().clone(),
            labels: ledger.labels().clone(),
            duration_seconds: duration,
            throughput_per_second: if duration > 0.0 {
                c.succeeded as f64 / duration
            } else {
                0.0
            },
            latency_ms: LatencySummary::from_micros(&h.latency),
            queue_wait_ms: LatencySummary::from_micros(&h.queue_wait),
            inference_ms: LatencySummary::from_micros(&h.inference),
            enqueue_ms: LatencySummary::from_micros(&h.enqueue),
            schedule_lag_ms: LatencySummary::from_micros(&h.schedule_lag),
            missing_ids_sample: if total_requests > known {
                ledger.missing_ids(MISSING_IDS_SAMPLE)
            } else {
                Vec::new()
            },
            delivery,
            journal: run.journal.stats(c.sent),
        }
    }

    /// One latency object; `None` when it had no samples.
    pub fn latency(&self, distribution: Distribution) -> Option<&LatencySummary> {
        match distribution {
            Distribution::Latency => &self.latency_ms,
            Distribution::QueueWait => &self.queue_wait_ms,
            Distribution::Inference => &self.inference_ms,
            Distribution::Enqueue => &self.enqueue_ms,
            Distribution::ScheduleLag => &self.schedule_lag_ms,
        }
        .as_ref()
    }

    /// One counter.
    pub fn counter(&self, counter: Counter) -> u64 {
        match counter {
            Counter::Sent => self.sent,
            Counter::Accepted => self.accepted,
            Counter::Rejected => self.rejected,
            Counter::SendErrors => self.send_errors,
            Counter::Completed => self.completed,
            Counter::Succeeded => self.succeeded,
            Counter::Failed => self.failed,
            Counter::Missing => self.missing,
            Counter::Duplicates => self.duplicates,
            Counter::Unmatched => self.unmatched,
        }
    }

    /// Requests that did not succeed (rejected, send errors, failed, missing) over the total.
    pub fn failure_ratio(&self) -> f64 {
        let bad = self.rejected + self.send_errors + self.failed + self.missing;
        if self.total_requests == 0 {
            0.0
        } else {
            bad as f64 / self.total_requests as f64
        }
    }
}
