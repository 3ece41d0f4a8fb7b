//! The health of one endpoint: ready, not ready or ejected, and the rules that move it between
//! them (a `/readyz` probe's result, a failed attempt, time passing).
//!
//! A new endpoint is `NotReady` until `/readyz` answers 200 (probed every
//! [`NOT_READY_PROBE_INTERVAL`]); a `Ready` endpoint is probed every [`READY_PROBE_INTERVAL`]
//! so a pod that starts terminating leaves rotation; a failed attempt ejects the endpoint for
//! `--eject-duration`, after which it is `NotReady` and probed back. The balancer applies these
//! rules under its lock; nothing here locks or waits.

use std::time::Duration;

use harness_core::wire::EndpointState;
use tokio::time::Instant;

/// Probe period of an endpoint that is not ready yet: a new replica takes traffic within this.
pub const NOT_READY_PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// Probe period of a ready endpoint.
pub const READY_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What a `/readyz` probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// 200.
    Ready,
    /// Answered, but not 200 (warming up, shutting down).
    NotReady,
    /// Connect error or timeout.
    Unreachable,
}

/// Where an endpoint stands, with the instant its state next changes or is checked.
#[derive(Debug, Clone, Copy)]
pub(super) enum Health {
    Ready { next_probe: Instant },
    NotReady { next_probe: Instant },
    Ejected { until: Instant },
}

impl Health {
    /// A new endpoint: not ready, due for a probe at once.
    pub(super) fn new(now: Instant) -> Self {
        Health::NotReady { next_probe: now }
    }

    /// Out of rotation for `eject_for` after a failed attempt.
    pub(super) fn ejected(now: Instant, eject_for: Duration) -> Self {
        Health::Ejected {
            until: now + eject_for,
        }
    }

    /// The state reported in `/stats` and the `dispatcher_endpoints` gauge.
    pub(super) fn state(self) -> EndpointState {
        match self {
            Health::Ready { .. } => EndpointState::Ready,
            Health::NotReady { .. } => EndpointState::NotReady,
            Health::Ejected { .. } => EndpointState::Ejected,
        }
    }

    pub(super) fn is_ready(self) -> bool {
        matches!(self, Health::Ready { .. })
    }

    pub(super) fn is_ejected(self) -> bool {
        matches!(self, Health::Ejected { .. })
    }

    /// Whether a probe is due at `now`: its probe time has come, or its ejection has run out.
    pub(super) fn probe_due(self, now: Instant) -> bool {
        match self {
            Health::Ready { next_probe } | Health::NotReady { next_probe } => next_probe <= now,
            Health::Ejected { until } => until <= now,
        }
    }

    /// The health once a probe is sent: an ejection that has run its time becomes `NotReady`.
    pub(super) fn probing(self, now: Instant) -> Self {
        match self {
            Health::Ejected { .. } => Health::NotReady { next_probe: now },
            other => other,
        }
    }

    /// The health after a probe answered `result` at `now`.
    pub(super) fn after_probe(
        self,
        result: ProbeResult,
        now: Instant,
        eject_for: Duration,
    ) -> Self {
        match (result, self) {
            // An attempt failed while the probe was out: the ejection stands.
            (_, Health::Ejected { .. }) => self,
            (ProbeResult::Ready, _) => Health::Ready {
                next_probe: now + READY_PROBE_INTERVAL,
            },
            (ProbeResult::Unreachable, Health::Ready { .. }) => Health::ejected(now, eject_for),
            (ProbeResult::NotReady | ProbeResult::Unreachable, _) => Health::NotReady {
                next_probe: now + NOT_READY_PROBE_INTERVAL,
            },
        }
    }
}
