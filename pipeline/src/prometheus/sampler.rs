//! The report's view of the demo through Prometheus: the queue and replica series read back
//! from the server, beside the ones the load tester samples directly.

use std::sync::Arc;
use std::time::Duration;

use autoscaler::PrometheusSource;
use futures::future::BoxFuture;
use load_tester::{Sample, Sampler, SeriesKind};

/// Series of the report's queue/replicas plot read from Prometheus: the replicas it can
/// scrape (the dashboard's "current replicas") and the queue length it stored.
pub struct PrometheusSampler {
    source: PrometheusSource,
}

/// Series names of [`PrometheusSampler`].
pub const PROM_REPLICAS: &str = "replicas up (Prometheus)";
pub const PROM_QUEUE: &str = "queue length (Prometheus)";

impl PrometheusSampler {
    pub fn new(url: &str) -> anyhow::Result<Arc<Self>> {
        let source = PrometheusSource::new(url, Default::default(), Duration::from_secs(1))
            .map_err(anyhow::Error::msg)?;
        Ok(Arc::new(Self { source }))
    }
}

impl Sampler for PrometheusSampler {
    fn sample(&self) -> BoxFuture<'_, anyhow::Result<Vec<Sample>>> {
        Box::pin(async move {
            let mut samples = Vec::new();
            for (series, kind, promql) in [
                (
                    PROM_REPLICAS,
                    SeriesKind::Replicas,
                    "count(up{job=\"inference\"} == 1)",
                ),
                (
                    PROM_QUEUE,
                    SeriesKind::Queue,
                    "sum(dispatcher_queue_length{job=\"dispatcher\"})",
                ),
            ] {
                if let Some(value) = self.source.query(promql).await? {
                    samples.push(Sample::new(series, kind, value));
                }
            }
            Ok(samples)
        })
    }
}
