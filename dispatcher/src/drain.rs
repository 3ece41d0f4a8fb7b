//! The paced drain: takes items off the queue at `--drain-rate` and hands each, with a slot on
//! an endpoint, to the upstream.
//!
//! Item `k` leaves at the later of its deadline `start + k / rate` (a [`Pacer`] from a fixed
//! start, so the rate does not drift) and the moment an item and an endpoint slot are both
//! available. Two modes follow from the settings:
//! - fixed rate: a rate below the pods' capacity; deadlines set the pace;
//! - capacity-bound: a rate above it; the drain mostly waits in [`Balancer::acquire`] and the
//!   pods' `--max-in-flight` slots set the pace.
//!
//! Catch-up is bounded. When the drain was held back (empty queue, no capacity) by more than
//! [`Drain::max_lag`], the pacer is re-anchored at the moment the item leaves: the next one is
//! due one interval later, not at once. Otherwise a minute with no endpoint at 2/s would be
//! followed by 120 items sent as fast as slots free up, far above the configured rate, to pods
//! that just came back. Lateness up to `max_lag` (one interval, at least [`MIN_MAX_LAG`]) is
//! caught up, so timer jitter and short stalls of a busy machine do not lower the long-run rate;
//! the burst that catching up can cause is at most `MIN_MAX_LAG × rate` items, and never more
//! than the free `--max-in-flight` slots at any moment.

use std::sync::Arc;
use std::time::Duration;

use harness_core::pacing::Pacer;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::balancer::{Balancer, Permit};
use crate::queue::{Item, Queue};
use crate::upstream::Upstream;

/// Lateness that is always caught up, whatever the rate: a stall of the process this long (a
/// busy node) costs no items at high rates. At 500/s it allows a catch-up burst of 50 items.
pub const MIN_MAX_LAG: Duration = Duration::from_millis(100);

/// The pacing half of the drain, separate from sending so it can be tested in paused time.
#[derive(Debug)]
pub struct Drain {
    queue: Arc<Queue>,
    balancer: Arc<Balancer>,
    pacer: Pacer,
    max_lag: Duration,
}

impl Drain {
    /// A drain whose first item may leave at `start`. `rate` is validated (finite, > 0).
    pub fn new(queue: Arc<Queue>, balancer: Arc<Balancer>, rate: f64, start: Instant) -> Self {
        Self {
            queue,
            balancer,
            pacer: Pacer::new(start, rate),
            max_lag: Duration::from_secs_f64(1.0 / rate).max(MIN_MAX_LAG),
        }
    }

    /// How late an item may leave before the pacer is re-anchored instead of caught up.
    pub fn max_lag(&self) -> Duration {
        self.max_lag
    }

    /// Waits for an item, the next deadline and a slot, then pops the item. `None` once the
    /// queue is closed and empty. Nothing is held across an `.await` but the permit, so the
    /// future can be dropped at any point without losing an item.
    pub async fn next(&mut self) -> Option<(Item, Permit)> {
        let due = self.pacer.next_deadline();
        loop {
            // The item first: once shutdown has closed an empty queue, the drain ends now
            // rather than after a pacing interval that may be long at low rates.
            if !self.queue.wait_for_item().await {
                return None;
            }
            tokio::time::sleep_until(due).await;
            let permit = self.balancer.acquire(&[]).await;
            // The drain is the only consumer, so the item is still there; the loop only guards
            // against a future second consumer.
            if let Some(item) = self.queue.pop() {
                self.settle(due);
                return Some((item, permit));
            }
        }
    }

    /// Re-anchors the pacer if this item left more than `max_lag` after its deadline.
    fn settle(&mut self, due: Instant) {
        let now = Instant::now();
        if now.saturating_duration_since(due) > self.max_lag {
            let mut pacer = Pacer::new(now, self.pacer.rate());
            // This item takes the slot at `now`; the next is due one interval later.
            pacer.next_deadline();
            self.pacer = pacer;
        }
    }
}

/// Runs the drain until the queue is closed and empty, spawning one tracked task per item.
pub async fn run(mut drain: Drain, upstream: Arc<Upstream>, tracker: TaskTracker) {
    while let Some((item, permit)) = drain.next().await {
        tracker.spawn(upstream.clone().deliver(item, permit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::ProbeResult;
    use prometheus::{IntGauge, IntGaugeVec, Opts};
    use reqwest::Url;

    fn parts(max_in_flight: usize) -> (Arc<Queue>, Arc<Balancer>) {
        let g = || IntGauge::new("g", "g").expect("gauge");
        let queue = Arc::new(Queue::new(100_000, usize::MAX, g(), g()));
        let gauge = IntGaugeVec::new(Opts::new("e", "e"), &["state"]).expect("gauge");
        let balancer = Arc::new(Balancer::new(max_in_flight, Duration::from_secs(5), gauge));
        balancer.set_endpoints([Url::parse("http://a:1").expect("url")]);
        for e in balancer.due_probes() {
            balancer.probe_finished(&e, ProbeResult::Ready);
        }
        (queue, balancer)
    }

    fn fill(queue: &Queue, n: usize) {
        for i in 0..n {
            let item = Item {
                id: i.to_string(),
                image: bytes::Bytes::from_static(b"AAAA"),
                enqueued_at: Instant::now(),
                enqueued_at_ms: 0.0,
            };
            queue.push(item).expect("fits");
        }
    }

    /// Dispatch times (seconds after `start`) of every item the drain releases before `end`.
    async fn released_until(drain: &mut Drain, start: Instant, end: Duration) -> Vec<f64> {
        let mut times = Vec::new();
        while let Ok(Some((_item, _permit))) =
            tokio::time::timeout_at(start + end, drain.next()).await
        {
            times.push((Instant::now() - start).as_secs_f64());
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn two_per_second_gives_twenty_in_ten_seconds() {
        let (queue, balancer) = parts(4);
        fill(&queue, 100);
        let start = Instant::now();
        let mut drain = Drain::new(queue.clone(), balancer, 2.0, start);
        let times = released_until(&mut drain, start, Duration::from_secs(10)).await;
        assert!(
            (19..=21).contains(&times.len()),
            "{} items: {times:?}",
            times.len()
        );
        for (k, t) in times.iter().enumerate() {
            assert!((t - k as f64 * 0.5).abs() < 1e-3, "item {k} at {t}");
        }
        assert_eq!(queue.usage().0, 100 - times.len());
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_rate() {
        let (queue, balancer) = parts(4);
        fill(&queue, 10);
        let start = Instant::now();
        let mut drain = Drain::new(queue, balancer, 0.25, start);
        let times = released_until(&mut drain, start, Duration::from_secs(17)).await;
        assert_eq!(times, [0.0, 4.0, 8.0, 12.0, 16.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_period_is_not_followed_by_a_burst() {
        let (queue, balancer) = parts(4);
        let start = Instant::now();
        let mut drain = Drain::new(queue.clone(), balancer, 2.0, start);
        // Nothing to send for a minute, then 10 items at once.
        let filler = {
            let queue = queue.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                fill(&queue, 10);
            }
        };
        let (times, ()) = tokio::join!(
            released_until(&mut drain, start, Duration::from_millis(62_750)),
            filler
        );
        assert_eq!(times, [60.0, 60.5, 61.0, 61.5, 62.0, 62.5]);
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_bound_when_endpoints_are_full() {
        // A high rate with one slot: each item waits for the previous one to finish (100 ms
        // upstream), so capacity, not the 1000/s rate, sets the pace, and no burst follows.
        let (queue, balancer) = parts(1);
        fill(&queue, 100);
        let start = Instant::now();
        let mut drain = Drain::new(queue, balancer, 1000.0, start);
        let mut times = Vec::new();
        let mut in_flight = Vec::new();
        while let Ok(Some((_item, permit))) =
            tokio::time::timeout_at(start + Duration::from_millis(950), drain.next()).await
        {
            times.push((Instant::now() - start).as_secs_f64());
            in_flight.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(permit);
            }));
        }
        assert_eq!(times.len(), 10, "{times:?}");
        for pair in times.windows(2) {
            assert!((pair[1] - pair[0] - 0.1).abs() < 1e-3, "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_empty_queue_ends_the_drain_without_waiting_for_the_pace() {
        let (queue, balancer) = parts(4);
        fill(&queue, 1);
        let start = Instant::now();
        let mut drain = Drain::new(queue.clone(), balancer, 0.01, start);
        assert!(drain.next().await.is_some());
        queue.stop_accepting();
        assert!(drain.next().await.is_none());
        assert_eq!(Instant::now(), start, "did not sleep the 100 s interval");
    }

    #[test]
    fn max_lag_is_one_interval_with_a_floor() {
        let (queue, balancer) = parts(1);
        let d = Drain::new(queue.clone(), balancer.clone(), 2.0, Instant::now());
        assert_eq!(d.max_lag(), Duration::from_millis(500));
        let d = Drain::new(queue, balancer, 500.0, Instant::now());
        assert_eq!(d.max_lag(), MIN_MAX_LAG);
    }
}
