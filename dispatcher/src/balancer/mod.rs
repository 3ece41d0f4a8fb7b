//! The inference endpoints the dispatcher knows, their health, and the least-in-flight choice.
//!
//! All mutable state sits behind one mutex: endpoint counts are small (pods of one Deployment)
//! and every operation is a few comparisons, so one lock keeps state, in-flight counts and the
//! choice consistent without ordering puzzles. A [`Permit`] is one upstream attempt's slot on an
//! endpoint; dropping it frees the slot and wakes whoever waits for capacity.
//!
//! The health of each endpoint (ready, not ready, ejected) and its transitions are in
//! [`health`]; this file holds the set, the in-flight accounting and the choice.

mod health;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use harness_core::wire::{EndpointState, EndpointStats};
use prometheus::IntGaugeVec;
use reqwest::Url;
use tokio::sync::Notify;
use tokio::time::Instant;

use health::Health;
pub use health::{NOT_READY_PROBE_INTERVAL, ProbeResult, READY_PROBE_INTERVAL};

/// The paths of an endpoint's inference and readiness URLs, after its base URL: `/infer` and
/// `/readyz` for the harness protocol, `/v2/models/{m}/infer` and `/v2/models/{m}/ready` for v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPaths {
    pub infer: String,
    pub ready: String,
}

impl Default for EndpointPaths {
    fn default() -> Self {
        Self {
            infer: "/infer".into(),
            ready: "/readyz".into(),
        }
    }
}

/// One inference endpoint's address and the URLs derived from it once.
#[derive(Debug)]
pub struct Endpoint {
    /// The base URL as given, without a trailing slash (the key and the label in reports).
    pub base: Arc<str>,
    pub infer_url: Url,
    /// Probed until it answers 200 (`/readyz`, or a v2 model's `/ready`).
    pub ready_url: Url,
}

impl Endpoint {
    fn new(base: &Url, paths: &EndpointPaths) -> Option<Self> {
        let key = base.as_str().trim_end_matches('/');
        Some(Self {
            infer_url: Url::parse(&format!("{key}{}", paths.infer)).ok()?,
            ready_url: Url::parse(&format!("{key}{}", paths.ready)).ok()?,
            base: key.into(),
        })
    }
}

#[derive(Debug)]
struct Entry {
    endpoint: Arc<Endpoint>,
    health: Health,
    in_flight: usize,
    /// Sequence number of the last time this endpoint was chosen: ties on in-flight go to the
    /// endpoint idle the longest, so a light load still spreads over every pod.
    last_pick: u64,
    probing: bool,
    completed: u64,
    failed: u64,
}

#[derive(Debug, Default)]
struct Inner {
    endpoints: BTreeMap<Arc<str>, Entry>,
    picks: u64,
}

impl Inner {
    /// The live entry for `endpoint`, unless it was removed (or removed and added again) since.
    fn entry(&mut self, endpoint: &Arc<Endpoint>) -> Option<&mut Entry> {
        self.endpoints
            .get_mut(&endpoint.base)
            .filter(|e| Arc::ptr_eq(&e.endpoint, endpoint))
    }
}

/// The endpoint set with health and in-flight accounting.
#[derive(Debug)]
pub struct Balancer {
    inner: Mutex<Inner>,
    /// Woken whenever capacity may have appeared: a slot freed, an endpoint became ready or the
    /// set changed. Several tasks may wait (the drain and retrying items), hence `notify_waiters`.
    capacity: Notify,
    max_in_flight: usize,
    eject_for: Duration,
    gauge: IntGaugeVec,
    paths: EndpointPaths,
}

/// One attempt's slot on an endpoint; frees it on drop.
#[derive(Debug)]
pub struct Permit {
    balancer: Arc<Balancer>,
    endpoint: Arc<Endpoint>,
}

impl Permit {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(entry) = self.balancer.lock().entry(&self.endpoint) {
            entry.in_flight -= 1;
        }
        self.balancer.capacity.notify_waiters();
    }
}

impl Balancer {
    /// `gauge` is `dispatcher_endpoints{state}`.
    pub fn new(max_in_flight: usize, eject_for: Duration, gauge: IntGaugeVec) -> Self {
        let b = Self {
            inner: Mutex::default(),
            capacity: Notify::new(),
            max_in_flight,
            eject_for,
            gauge,
            paths: EndpointPaths::default(),
        };
        b.publish(&b.lock());
        b
    }

    /// The same balancer, building endpoint URLs with `paths` (the harness protocol's by
    /// default).
    pub fn with_paths(mut self, paths: EndpointPaths) -> Self {
        self.paths = paths;
        self
    }

    /// Replaces the endpoint set. Known endpoints keep their state; new ones start `NotReady`
    /// and due for a probe at once; removed ones finish their in-flight attempts.
    pub fn set_endpoints(&self, urls: impl IntoIterator<Item = Url>) {
        let now = Instant::now();
        let wanted: BTreeMap<Arc<str>, Endpoint> = urls
            .into_iter()
            .filter_map(|url| Endpoint::new(&url, &self.paths))
            .map(|e| (e.base.clone(), e))
            .collect();
        let mut inner = self.lock();
        inner.endpoints.retain(|base, _| {
            let keep = wanted.contains_key(base);
            if !keep {
                tracing::info!(endpoint = %base, "endpoint removed");
            }
            keep
        });
        for (base, endpoint) in wanted {
            inner.endpoints.entry(base).or_insert_with(|| {
                tracing::info!(endpoint = %endpoint.base, "endpoint added, probing /readyz");
                Entry {
                    endpoint: Arc::new(endpoint),
                    health: Health::new(now),
                    in_flight: 0,
                    last_pick: 0,
                    probing: false,
                    completed: 0,
                    failed: 0,
                }
            });
        }
        self.publish(&inner);
        drop(inner);
        self.capacity.notify_waiters();
    }

    /// A slot on the ready endpoint with the fewest attempts in flight, preferring endpoints not
    /// in `avoid` (those an item already failed on); `None` if every ready endpoint is full.
    pub fn try_acquire(self: &Arc<Self>, avoid: &[Arc<str>]) -> Option<Permit> {
        let mut guard = self.lock();
        let Inner { endpoints, picks } = &mut *guard;
        let max = self.max_in_flight;
        let (_, entry) = endpoints
            .iter_mut()
            .filter(|(_, e)| e.health.is_ready() && e.in_flight < max)
            .min_by_key(|(base, e)| (avoid.contains(base), e.in_flight, e.last_pick))?;
        *picks += 1;
        entry.last_pick = *picks;
        entry.in_flight += 1;
        let endpoint = entry.endpoint.clone();
        Some(Permit {
            balancer: self.clone(),
            endpoint,
        })
    }

    /// Waits for a slot: when every endpoint is full or none is ready, the caller waits here and
    /// the pods' capacity sets the pace.
    pub async fn acquire(self: &Arc<Self>, avoid: &[Arc<str>]) -> Permit {
        loop {
            // Register interest before checking, so a release in between is not missed.
            let notified = self.capacity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(permit) = self.try_acquire(avoid) {
                return permit;
            }
            notified.await;
        }
    }

    /// The endpoint answered (2xx, or a final 4xx).
    pub fn record_success(&self, endpoint: &Arc<Endpoint>) {
        if let Some(entry) = self.lock().entry(endpoint) {
            entry.completed += 1;
        }
    }

    /// The attempt failed (connect error, timeout, 5xx): eject the endpoint for a while.
    pub fn record_failure(&self, endpoint: &Arc<Endpoint>) {
        let mut inner = self.lock();
        let Some(entry) = inner.entry(endpoint) else {
            return;
        };
        entry.failed += 1;
        if !entry.health.is_ejected() {
            tracing::warn!(endpoint = %endpoint.base, eject_for = ?self.eject_for, "endpoint ejected");
            entry.health = Health::ejected(Instant::now(), self.eject_for);
        }
        self.publish(&inner);
    }

    /// Endpoints due for a `/readyz` probe now, marked as being probed. Ejections that have run
    /// their time become `NotReady` here.
    pub fn due_probes(&self) -> Vec<Arc<Endpoint>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut due = Vec::new();
        for entry in inner.endpoints.values_mut() {
            if !entry.probing && entry.health.probe_due(now) {
                entry.health = entry.health.probing(now);
                entry.probing = true;
                due.push(entry.endpoint.clone());
            }
        }
        self.publish(&inner);
        due
    }

    /// Applies a probe's result.
    pub fn probe_finished(&self, endpoint: &Arc<Endpoint>, result: ProbeResult) {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entry) = inner.entry(endpoint) else {
            return;
        };
        entry.probing = false;
        let was = entry.health;
        entry.health = was.after_probe(result, now, self.eject_for);
        let became_ready = entry.health.is_ready() && !was.is_ready();
        if was.state() != entry.health.state() {
            tracing::info!(endpoint = %endpoint.base, state = entry.health.state().as_str(), "endpoint state changed");
        }
        self.publish(&inner);
        drop(inner);
        if became_ready {
            self.capacity.notify_waiters();
        }
    }

    pub fn ready_count(&self) -> usize {
        self.lock()
            .endpoints
            .values()
            .filter(|e| e.health.is_ready())
            .count()
    }

    /// Every endpoint for `/stats`.
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.lock()
            .endpoints
            .values()
            .map(|e| EndpointStats {
                url: e.endpoint.base.to_string(),
                state: e.health.state(),
                in_flight: e.in_flight,
                completed_total: e.completed,
                failed_total: e.failed,
            })
            .collect()
    }

    fn publish(&self, inner: &Inner) {
        for state in [
            EndpointState::Ready,
            EndpointState::NotReady,
            EndpointState::Ejected,
        ] {
            let n = inner
                .endpoints
                .values()
                .filter(|e| e.health.state() == state)
                .count();
            self.gauge
                .with_label_values(&[state.as_str()])
                .set(n as i64);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        harness_core::sync::lock(&self.inner)
    }
}

#[cfg(test)]
mod tests;
