//! The events of a run as its parts report them: each goes to the run's journal, then to its
//! ledger (or pull state, or timeline). The sender, the puller and the sampler call these and
//! never the ledger directly, so nothing reaches the report that the journal does not hold.
//! (Records come in through [`crate::store`], which journals them the same way.)

use std::time::Duration;

use harness_core::sync::lock;
use harness_core::wire::DroppedRecords;

use crate::delivery::PullStatus;
use crate::journal::{Line, micros};
use crate::ledger::{EnqueueOutcome, Restart};
use crate::sampler::Sample;
use crate::store::RunState;
use crate::target::DirectAnswer;

impl RunState {
    /// A send started `lag` after its intended time, `at` into the run.
    pub fn on_sent(&self, seq: u64, lag: Duration, at: Duration) {
        self.journal.write(Line::Sent {
            seq,
            lag: micros(lag),
            at: micros(at),
        });
        lock(&self.ledger).on_sent(seq, lag, at);
    }

    /// A send waited for the concurrency cap.
    pub fn on_cap_hit(&self) {
        self.journal.write(Line::Cap);
        lock(&self.ledger).on_cap_hit();
    }

    /// `/enqueue` answered (or failed) `since_intended` after the intended send time; an
    /// acceptance by dispatcher instance `instance` (`None`: the answer named none). Returns
    /// the dispatcher restart a new instance id revealed.
    pub fn on_enqueue(
        &self,
        seq: u64,
        outcome: EnqueueOutcome,
        instance: Option<&str>,
        since_intended: Duration,
        at: Duration,
    ) -> Option<Restart> {
        let accepted = outcome == EnqueueOutcome::Accepted;
        // One lock for the lines and both calls: a restart noticed elsewhere cannot see the
        // request accepted but not yet placed with its instance, and the journal has the
        // instance lines in the order the ledger took them.
        let mut ledger = lock(&self.ledger);
        let number = instance
            .filter(|_| accepted)
            .and_then(|id| self.journal.instance(id, false));
        self.journal
            .write(Line::enqueue(seq, &outcome, number, since_intended, at));
        ledger.on_enqueue(seq, outcome, since_intended, at);
        accepted
            .then(|| ledger.accepted_by(seq, instance))
            .flatten()
    }

    /// An answer came from dispatcher instance `id` (`/stats`, a records page): a new one
    /// means the earlier instance is gone, with the requests it held.
    pub fn observe_dispatcher(&self, id: &str) {
        let restart = {
            let mut ledger = lock(&self.ledger);
            // Journaled the first time only: the ledger ignores an id it knows.
            self.journal.instance(id, true);
            ledger.observe_instance(id)
        };
        if let Some(restart) = restart {
            self.dispatcher_restarted(&restart);
        }
    }

    /// A direct target's answer (or the kind of failure) to request `seq`.
    pub fn on_direct(
        &self,
        seq: u64,
        answer: Result<DirectAnswer, &'static str>,
        since_intended: Duration,
        at: Duration,
    ) {
        self.journal
            .write(Line::direct(seq, &answer, since_intended, at));
        lock(&self.ledger).on_direct(seq, answer, since_intended, at);
    }

    /// Whether the run pulls its records.
    pub fn set_pull_status(&self, status: PullStatus) {
        self.journal.write(Line::Pull { status });
        lock(&self.pull).status = status;
    }

    /// The dispatcher's latest drop counts for this run (journaled when they change).
    pub fn set_dispatcher_dropped(&self, dropped: DroppedRecords) {
        let mut pull = lock(&self.pull);
        if pull.dispatcher_dropped != dropped {
            self.journal.write(Line::Dropped(dropped));
            pull.dispatcher_dropped = dropped;
        }
    }

    /// Sampled points, `at` into the run.
    pub fn push_samples(&self, at: Duration, samples: Vec<Sample>) {
        let mut timeline = lock(&self.timeline);
        for sample in samples {
            // JSON has no NaN: a point that is not a number is a gap in the plot either way.
            if sample.value.is_finite() {
                self.journal.write(Line::Sample {
                    at: at.as_secs_f64(),
                    series: sample.series.clone(),
                    kind: sample.kind,
                    value: sample.value,
                });
            }
            timeline.push(at, sample);
        }
    }
}
