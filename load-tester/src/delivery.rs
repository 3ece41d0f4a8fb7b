//! How latency records reach the load tester: pushed by the dispatcher to `/storeLatency`, or
//! pulled from the dispatcher's `GET /records` over the same base URL the requests go to. Pull
//! needs nothing to reach back into the load tester, so it works from a laptop behind
//! `kubectl port-forward`; push is the reference design's contract. With both on, a record
//! counts once whichever path brings it (the ledger keeps one flag per request).

use harness_core::wire::DroppedRecords;
use serde::{Deserialize, Serialize};

/// The path one record came by (`push` or `pull` in the run journal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Posted by the dispatcher to `/storeLatency`.
    Push,
    /// Fetched from the dispatcher's `GET /records`.
    Pull,
}

/// `--record-delivery`: which paths a run uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum RecordDelivery {
    /// Pull when the dispatcher offers `GET /records`, and take pushes too.
    #[default]
    Auto,
    /// Pull, and refuse to start a run against a dispatcher without `GET /records` (pushes are
    /// still taken).
    Pull,
    /// Only what the dispatcher pushes to `/storeLatency` (its `--report-url`).
    Push,
}

/// Whether a run pulled its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PullStatus {
    /// Not tried (`--record-delivery push`).
    #[default]
    Off,
    /// The dispatcher answered `GET /records`; the run pulled.
    Active,
    /// The dispatcher does not offer `GET /records` (an older version, or not this project's
    /// dispatcher): records came by push only.
    Unavailable,
}

/// The `delivery` object of `stats.json`: which path brought the records, and what the
/// dispatcher said it dropped before anyone collected it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStats {
    pub mode: RecordDelivery,
    pub pull: PullStatus,
    /// Requests whose record came by push.
    pub pushed: u64,
    /// Requests whose record came by pull.
    pub pulled: u64,
    /// Records that arrived again for a request already counted (not counted twice).
    pub redelivered: u64,
    /// Records of this run the dispatcher dropped, by reason (from its `GET /records`
    /// answers; zero when the run did not pull). Their requests are among the `missing`.
    pub dispatcher_dropped: DroppedRecords,
}

impl DeliveryStats {
    /// `push`, `pull`, `push+pull` or `none`: the paths that brought at least one record.
    pub fn paths(&self) -> &'static str {
        match (self.pushed > 0, self.pulled > 0) {
            (true, true) => "push+pull",
            (true, false) => "push",
            (false, true) => "pull",
            (false, false) => "none",
        }
    }
}
