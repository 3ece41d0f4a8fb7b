//! The aggregates a ledger keeps instead of per-request data: counters, per-second bins for
//! the time plots, and HDR histograms for the percentiles.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{HIGHEST_MICROS, SecondLatency};

/// Request counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub send_errors: u64,
    /// Distinct requests a record arrived for.
    pub completed: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Records for a request that already had one, both pushed: the dispatcher sent the same
    /// item twice, which it should not.
    pub duplicates: u64,
    pub unmatched: u64,
    /// Requests whose (counted) record was pushed.
    pub pushed: u64,
    /// Requests whose (counted) record was pulled.
    pub pulled: u64,
    /// Records for a request that already had one, where one of them was pulled: a pulled page
    /// lost on the way and asked for again, or a record both pushed and pulled. Expected in
    /// small numbers and never counted twice.
    pub redelivered: u64,
    /// Sends that waited for the concurrency cap (their wait shows up as schedule lag).
    pub cap_hits: u64,
}

/// One second of the run, for the time plots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecondBin {
    /// Requests whose send started in this second.
    pub sent: u32,
    /// `/enqueue` answers received in this second.
    pub rejected: u32,
    pub send_errors: u32,
    /// Records whose completion time falls in this second.
    pub succeeded: u32,
    pub failed: u32,
    /// Latency (µs) of successful requests *sent* in this second: exact while few, then within
    /// 0.8 % (see [`SecondLatency`]).
    pub latency: SecondLatency,
}

/// HDR histograms of a run, in microseconds.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Dispatcher-reported end-to-end latency of successful requests.
    pub latency: Histogram<u64>,
    pub queue_wait: Histogram<u64>,
    pub inference: Histogram<u64>,
    /// Client side: intended send time to `/enqueue` answer (any HTTP answer).
    pub enqueue: Histogram<u64>,
    /// Actual send time minus intended send time.
    pub schedule_lag: Histogram<u64>,
}

impl Histograms {
    pub(super) fn new() -> Self {
        let h = || {
            Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
                .unwrap_or_else(|e| unreachable!("constant bounds are valid: {e}"))
        };
        Self {
            latency: h(),
            queue_wait: h(),
            inference: h(),
            enqueue: h(),
            schedule_lag: h(),
        }
    }
}
