//! The parts of one dispatcher instance, shared by the HTTP handlers and the background tasks.
//!
//! The state sits above the modules it holds: the queue, balancer, outbox and metrics know
//! nothing of it, and the tasks that need some of them (the upstream, the reporter) are given
//! just those parts by the server.

use std::sync::Arc;

use harness_core::wire::{DispatcherStats, LatencyRecord};

use crate::balancer::Balancer;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::outbox::{Limits, Outbox};
use crate::queue::Queue;
use crate::record::Recorder;

/// Cheap to clone: one `Arc`.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Drawn at start: tells clients a restarted process (whose queue is gone) from this one.
    instance_id: String,
    settings: Settings,
    metrics: Arc<Metrics>,
    queue: Arc<Queue>,
    balancer: Arc<Balancer>,
    outbox: Arc<Outbox>,
    recorder: Recorder,
}

impl AppState {
    /// Builds the queue, balancer, outbox and metrics. Starts no task: [`crate::run`] does, and
    /// handler tests use the state as is with [`crate::app`].
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new()?);
        metrics.drain_rate.set(settings.drain_rate);
        let queue = Arc::new(Queue::new(
            settings.queue_capacity,
            settings.queue_max_bytes,
            metrics.queue_length.clone(),
            metrics.queue_bytes.clone(),
        ));
        let balancer = Arc::new(
            Balancer::new(
                settings.max_in_flight,
                settings.eject_duration,
                metrics.endpoints.clone(),
            )
            .with_paths(settings.upstream.paths()),
        );
        let limits = Limits {
            capacity: settings.outbox_capacity,
            max_bytes: settings.outbox_max_bytes,
            retention: settings.record_retention,
            batch_size: settings.report_batch_size,
        };
        let outbox = Arc::new(Outbox::new(limits, metrics.clone()));
        let recorder = Recorder::new(metrics.clone(), outbox.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                instance_id: uuid::Uuid::new_v4().simple().to_string(),
                settings,
                metrics,
                queue,
                balancer,
                outbox,
                recorder,
            }),
        })
    }

    /// This process's random id, in `/enqueue` answers, `/stats` and `/records` pages.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// The validated configuration.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The Prometheus metrics of this instance.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The queue `/enqueue` pushes to and the drain pops from.
    pub fn queue(&self) -> &Arc<Queue> {
        &self.inner.queue
    }

    /// The inference endpoints and their slots.
    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.inner.balancer
    }

    /// The latency records waiting for the load tester.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.inner.outbox
    }

    /// Where finished items are counted and their records queued.
    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    /// Accounts for a finished item and queues its record for the load tester.
    pub fn finish(&self, record: LatencyRecord) {
        self.inner.recorder.finish(record);
    }

    /// `GET /stats`.
    pub fn stats(&self) -> DispatcherStats {
        let s = &self.inner.settings;
        let m = &self.inner.metrics;
        let (queue_length, queue_bytes) = self.inner.queue.usage();
        DispatcherStats {
            instance_id: self.inner.instance_id.clone(),
            queue_length,
            queue_bytes,
            queue_capacity: s.queue_capacity,
            queue_max_bytes: s.queue_max_bytes,
            drain_rate: s.drain_rate,
            max_in_flight_per_endpoint: s.max_in_flight,
            accepting: self.inner.queue.is_accepting(),
            enqueued_total: m.enqueued.get(),
            rejected_total: m.rejected_totals(),
            completed_total: m.completed_totals(),
            in_flight: usize::try_from(m.in_flight.get()).unwrap_or(0),
            endpoints: self.inner.balancer.stats(),
        }
    }
}
