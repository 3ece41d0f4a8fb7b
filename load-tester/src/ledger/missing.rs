//! Requests given up on, and why.
//!
//! `missing` in the stats counts every expected request whose fate is unknown (no record, no
//! rejection, no send error). Most are missing because no record arrived before the drain
//! deadline; some are known to be lost earlier, for a reason the load tester saw happen (the
//! dispatcher that held them restarted, the load tester itself stopped). Marking those lets the
//! run stop waiting for them and lets the report say why they are missing.
//!
//! The reason lives in the two top bits of the request's state byte, so marking costs no memory.
//! A mark is not final: a record that still arrives (pushed before the crash, say) clears it,
//! and the request counts as its real outcome, once.

use std::collections::BTreeMap;
use std::fmt;

use super::{ACCEPTED, Ledger, RECORDED, REJECTED, SEND_ERROR, SENT};

/// The two state bits holding a request's [`MissingReason`] code; 0 means not marked.
const REASON_MASK: u8 = 0b1100_0000;
const REASON_SHIFT: u32 = 6;

/// Why an expected request has no known outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MissingReason {
    /// `no record`: no record arrived before the drain deadline (this includes requests expected
    /// but never sent). What `missing` meant before reasons existed.
    NoRecord,
    /// `dispatcher restarted`: accepted by a dispatcher instance that has since been replaced by
    /// another; its queue was in memory and died with it.
    DispatcherRestarted,
    /// `load tester stopped`: in flight when the load tester itself stopped.
    LoadTesterStopped,
}

impl MissingReason {
    /// Every reason, in the order reports list them.
    pub const ALL: [Self; 3] = [
        Self::NoRecord,
        Self::DispatcherRestarted,
        Self::LoadTesterStopped,
    ];

    /// The stable name, as in `stats.json`'s `missingByReason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRecord => "no record",
            Self::DispatcherRestarted => "dispatcher restarted",
            Self::LoadTesterStopped => "load tester stopped",
        }
    }

    /// The reason of a stable name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    fn index(self) -> usize {
        match self {
            Self::NoRecord => 0,
            Self::DispatcherRestarted => 1,
            Self::LoadTesterStopped => 2,
        }
    }

    /// The state bits of this reason (never 0, which means "not marked").
    fn bits(self) -> u8 {
        ((self.index() as u8) + 1) << REASON_SHIFT
    }

    fn of_bits(state: u8) -> Option<Self> {
        match (state & REASON_MASK) >> REASON_SHIFT {
            0 => None,
            code => Self::ALL.get(usize::from(code) - 1).copied(),
        }
    }
}

impl fmt::Display for MissingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of the marked requests.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Marked {
    /// Marked requests by [`MissingReason::index`], not counting those recorded since.
    by_reason: [u64; 3],
    /// Marked requests that were accepted: no longer outstanding.
    pub(super) accepted: u64,
}

impl Ledger {
    /// Marks request `seq` missing for `reason` when its fate is unknown (no record, no
    /// rejection, no send error) and it has no reason yet. True when it was marked.
    pub fn mark_missing(&mut self, seq: u64, reason: MissingReason) -> bool {
        match self.index(seq) {
            Some(i) => self.mark(i, reason),
            None => false,
        }
    }

    /// Marks every accepted request that has no record (and no reason yet) missing for
    /// `reason`, and returns how many. The run stops waiting for them.
    pub fn mark_outstanding_missing(&mut self, reason: MissingReason) -> u64 {
        self.mark_where(reason, |_| true)
    }

    /// Marks, for `reason`, the accepted requests without record or reason whose index passes
    /// `filter`; returns how many.
    /// Marks every request sent whose fate is unknown, accepted without a record or never
    /// answered at all, as missing for `reason`; returns how many were marked. A rebuild after
    /// the load tester was killed marks what is left as [`MissingReason::LoadTesterStopped`].
    pub fn mark_unknown_missing(&mut self, reason: MissingReason) -> u64 {
        let mut marked = 0;
        for i in 0..self.states.len() {
            if self.states[i] & SENT != 0 {
                marked += u64::from(self.mark(i, reason));
            }
        }
        marked
    }

    pub(super) fn mark_where(
        &mut self,
        reason: MissingReason,
        filter: impl Fn(usize) -> bool,
    ) -> u64 {
        let mut marked = 0;
        for i in 0..self.states.len() {
            let s = self.states[i];
            if s & ACCEPTED != 0 && s & (RECORDED | REASON_MASK) == 0 && filter(i) {
                marked += u64::from(self.mark(i, reason));
            }
        }
        marked
    }

    pub(super) fn mark(&mut self, i: usize, reason: MissingReason) -> bool {
        let s = self.states[i];
        if s & (RECORDED | REJECTED | SEND_ERROR | REASON_MASK) != 0 {
            return false;
        }
        self.states[i] |= reason.bits();
        self.marked.by_reason[reason.index()] += 1;
        if s & ACCEPTED != 0 {
            self.marked.accepted += 1;
        }
        true
    }

    /// A record arrived for request `i` (call before setting `RECORDED`): a mark it had no
    /// longer holds.
    pub(super) fn unmark(&mut self, i: usize) {
        let s = self.states[i];
        if let Some(reason) = MissingReason::of_bits(s) {
            self.states[i] &= !REASON_MASK;
            self.marked.by_reason[reason.index()] -= 1;
            if s & ACCEPTED != 0 {
                self.marked.accepted -= 1;
            }
        }
    }

    /// Request `i` was just accepted: if it was marked already, it is not outstanding.
    pub(super) fn accepted_marked(&mut self, i: usize) {
        if self.states[i] & REASON_MASK != 0 {
            self.marked.accepted += 1;
        }
    }

    /// The reason request `seq` is marked missing for, if any.
    pub fn missing_reason(&self, seq: u64) -> Option<MissingReason> {
        self.index(seq)
            .and_then(|i| MissingReason::of_bits(self.states[i]))
    }

    /// Requests marked missing for `reason` (and not recorded since).
    pub fn marked_missing(&self, reason: MissingReason) -> u64 {
        self.marked.by_reason[reason.index()]
    }

    /// `missing` requests by reason, every reason present: the marked ones, and the rest
    /// `no record`. The values add up to `missing` (should a caller's expected total be below
    /// the marked count, the reasons listed first take what there is).
    pub fn missing_by_reason(&self, missing: u64) -> BTreeMap<String, u64> {
        let mut left = missing;
        let mut out = BTreeMap::new();
        for reason in MissingReason::ALL.into_iter().skip(1) {
            let n = self.marked_missing(reason).min(left);
            left -= n;
            out.insert(reason.as_str().to_owned(), n);
        }
        out.insert(MissingReason::NoRecord.as_str().to_owned(), left);
        out
    }
}
