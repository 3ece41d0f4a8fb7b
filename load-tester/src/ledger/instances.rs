//! Which dispatcher instance accepted each request, and what a restart loses.
//!
//! The dispatcher's queue lives in memory: an instance that dies loses what it held. Every
//! instance draws a random id at start and sends it in its `/enqueue` answers, `GET /stats` and
//! `GET /records` pages. The ledger keeps a small table of the ids seen and, per request, one
//! byte: the table slot of the instance that accepted it (allocated on the first id seen, so
//! direct modes and dispatchers without ids pay nothing). A new id means the earlier instance
//! is gone: its accepted requests that have no record yet are marked missing with reason
//! `dispatcher restarted` at once, so the run does not wait for them until the drain deadline.
//! A dispatcher runs as one replica (its queue and outbox are per process), so two ids never
//! alternate in a healthy setup.

use super::{Ledger, MissingReason};

/// Slots 1..=255 hold instances; 0 means "not known".
const MAX_INSTANCES: usize = u8::MAX as usize;

/// The dispatcher instances one run has seen.
#[derive(Debug, Default)]
pub(super) struct Instances {
    /// Instance ids; slot `n` is `ids[n - 1]`.
    ids: Vec<String>,
    /// The slot of the latest instance seen.
    current: u8,
    /// Per request, the slot of the instance that accepted it (empty until an id is seen).
    of_request: Vec<u8>,
    restarts: u64,
}

/// A dispatcher restart, noticed when a new instance id turned up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub previous: String,
    pub current: String,
    /// Requests the earlier instance accepted that have no record: now missing.
    pub lost: u64,
}

impl Ledger {
    /// Some answer (`/stats`, a records page) came from dispatcher instance `id`. Returns the
    /// restart when `id` is new and another instance came before it. An id seen before but no
    /// longer current (a late answer of a dead instance) changes nothing.
    pub fn observe_instance(&mut self, id: &str) -> Option<Restart> {
        self.new_instance(id, None)
    }

    /// [`Ledger::observe_instance`]; the request of index `spare` (just accepted by `id`) is
    /// not the earlier instance's.
    fn new_instance(&mut self, id: &str, spare: Option<usize>) -> Option<Restart> {
        let known = &mut self.instances;
        if id.is_empty() || known.ids.iter().any(|k| k == id) {
            return None;
        }
        if known.ids.len() >= MAX_INSTANCES {
            // Over 254 restarts in one run: later losses are reported as `no record`.
            return None;
        }
        if known.of_request.is_empty() {
            known.of_request = vec![0; self.states.len()];
        }
        known.ids.push(id.to_owned());
        let previous = known.current;
        known.current = known.ids.len() as u8;
        if previous == 0 {
            return None;
        }
        known.restarts += 1;
        let current = known.current;
        // Taken out for the scan, which needs the ledger mutably.
        let slots = std::mem::take(&mut known.of_request);
        let lost = self.mark_where(MissingReason::DispatcherRestarted, |i| {
            Some(i) != spare && slots.get(i).copied().unwrap_or(0) != current
        });
        self.instances.of_request = slots;
        Some(Restart {
            previous: self.instances.ids[usize::from(previous) - 1].clone(),
            current: id.to_owned(),
            lost,
        })
    }

    /// Request `seq` was accepted (call after [`Ledger::on_enqueue`]) by instance `id`, or by
    /// an instance that did not say (`None`: taken as the current one). An answer from an
    /// instance already replaced means the request is lost already.
    pub fn accepted_by(&mut self, seq: u64, id: Option<&str>) -> Option<Restart> {
        let i = self.index(seq)?;
        let restart = id.and_then(|id| self.new_instance(id, Some(i)));
        let known = &mut self.instances;
        let slot = match id {
            Some(id) => known
                .ids
                .iter()
                .position(|k| k == id)
                .map_or(0, |p| p as u8 + 1),
            None => known.current,
        };
        if let Some(entry) = known.of_request.get_mut(i) {
            *entry = slot;
        }
        if slot != 0 && slot != known.current {
            self.mark(i, MissingReason::DispatcherRestarted);
        }
        restart
    }

    /// Dispatcher restarts seen during the run.
    pub fn dispatcher_restarts(&self) -> u64 {
        self.instances.restarts
    }
}
