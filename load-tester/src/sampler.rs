//! Time series sampled during a run: the dispatcher's queue length and ready replicas, plus
//! anything a caller plugs in through the [`Sampler`] trait (the local demo records its own
//! replica count; a Prometheus gauge such as `autoscaler_desired_replicas` can be scraped with
//! [`MetricsSampler`]).
//!
//! Samplers run once per interval, concurrently and each under a timeout. A sampler that
//! fails is skipped for that tick: the series shows a gap, and the run goes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use harness_core::wire::DispatcherStats;
use reqwest::Url;

/// Which axis of the "queue and replicas" plot a series belongs on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SeriesKind {
    /// Items waiting (left axis).
    Queue,
    /// Replicas or endpoints (right axis).
    Replicas,
}

/// One value of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub series: String,
    pub kind: SeriesKind,
    pub value: f64,
}

impl Sample {
    pub fn new(series: impl Into<String>, kind: SeriesKind, value: f64) -> Self {
        Self {
            series: series.into(),
            kind,
            value,
        }
    }
}

/// Something that can be sampled once per interval during a run.
pub trait Sampler: Send + Sync + 'static {
    /// Current values; an error or an empty vector leaves a gap.
    fn sample(&self) -> BoxFuture<'_, anyhow::Result<Vec<Sample>>>;
}

/// A sampler from a plain function, for values the caller holds in memory.
pub struct FnSampler<F>(pub F);

impl<F> Sampler for FnSampler<F>
where
    F: Fn() -> Vec<Sample> + Send + Sync + 'static,
{
    fn sample(&self) -> BoxFuture<'_, anyhow::Result<Vec<Sample>>> {
        let samples = (self.0)();
        Box::pin(async move { Ok(samples) })
    }
}

/// Series names of [`DispatcherStatsSampler`].
pub const QUEUE_LENGTH: &str = "queue length";
pub const READY_REPLICAS: &str = "ready replicas";

/// Samples the dispatcher's `GET /stats`: queue length and ready endpoints (= replicas).
pub struct DispatcherStatsSampler {
    client: reqwest::Client,
    url: Url,
    /// Told the instance id of every answer (restart detection).
    on_instance: Option<InstanceObserver>,
}

/// What [`DispatcherStatsSampler`] calls with each answer's dispatcher instance id.
pub type InstanceObserver = Arc<dyn Fn(&str) + Send + Sync>;

impl DispatcherStatsSampler {
    /// `dispatcher` is the base URL (`http://127.0.0.1:8080`).
    pub fn new(client: reqwest::Client, dispatcher: &Url) -> Self {
        Self {
            client,
            url: crate::base_url::endpoint(dispatcher, "stats"),
            on_instance: None,
        }
    }

    /// Calls `observer` with the instance id of every `/stats` answer.
    pub fn observing_instances(mut self, observer: InstanceObserver) -> Self {
        self.on_instance = Some(observer);
        self
    }
}

impl Sampler for DispatcherStatsSampler {
    fn sample(&self) -> BoxFuture<'_, anyhow::Result<Vec<Sample>>> {
        Box::pin(async move {
            let stats: DispatcherStats = self
                .client
                .get(self.url.clone())
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if let Some(observe) = &self.on_instance {
                observe(&stats.instance_id);
            }
            Ok(vec![
                Sample::new(QUEUE_LENGTH, SeriesKind::Queue, stats.queue_length as f64),
                Sample::new(
                    READY_REPLICAS,
                    SeriesKind::Replicas,
                    stats.ready_endpoints() as f64,
                ),
            ])
        })
    }
}

/// Scrapes a Prometheus text endpoint and reports the sum of one metric over its label sets.
pub struct MetricsSampler {
    client: reqwest::Client,
    url: Url,
    metric: String,
    series: String,
    kind: SeriesKind,
}

impl MetricsSampler {
    pub fn new(
        client: reqwest::Client,
        url: Url,
        metric: impl Into<String>,
        series: impl Into<String>,
        kind: SeriesKind,
    ) -> Self {
        Self {
            client,
            url,
            metric: metric.into(),
            series: series.into(),
            kind,
        }
    }
}

impl Sampler for MetricsSampler {
    fn sample(&self) -> BoxFuture<'_, anyhow::Result<Vec<Sample>>> {
        Box::pin(async move {
            let text = self
                .client
                .get(self.url.clone())
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            Ok(metric_sum(&text, &self.metric)
                .map(|value| Sample::new(self.series.clone(), self.kind, value))
                .into_iter()
                .collect())
        })
    }
}

/// Sum of every sample of `metric` in a text-format exposition; `None` if it has none.
pub fn metric_sum(exposition: &str, metric: &str) -> Option<f64> {
    let mut sum = None;
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        // `metric{labels} value [timestamp]` or `metric value`; not `metric_suffix ...`.
        let rest = match rest.chars().next() {
            Some('{') => rest.split_once('}').map_or("", |(_, v)| v),
            Some(' ') => rest,
            _ => continue,
        };
        if let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *sum.get_or_insert(0.0) += value;
        }
    }
    sum
}

/// One sampled series: `(seconds since the run start, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub kind: SeriesKind,
    pub points: Vec<(f64, f64)>,
}

/// The series sampled during a run, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    series: BTreeMap<String, Series>,
}

/// Points kept per series: a day at one sample per second.
const MAX_POINTS: usize = 86_400;

impl Timeline {
    pub fn push(&mut self, at: Duration, sample: Sample) {
        let series = self.series.entry(sample.series).or_insert(Series {
            kind: sample.kind,
            points: Vec::new(),
        });
        if series.points.len() < MAX_POINTS {
            series.points.push((at.as_secs_f64(), sample.value));
        }
    }

    pub fn series(&self) -> &BTreeMap<String, Series> {
        &self.series
    }

    pub fn is_empty(&self) -> bool {
        self.series.values().all(|s| s.points.is_empty())
    }
}

/// Runs every sampler once, concurrently, each bounded by `timeout`.
pub async fn sample_all(
    samplers: &[std::sync::Arc<dyn Sampler>],
    timeout: Duration,
) -> Vec<Sample> {
    let results = futures::future::join_all(
        samplers
            .iter()
            .map(|s| tokio::time::timeout(timeout, s.sample())),
    )
    .await;
    let mut samples = Vec::new();
    for result in results {
        match result {
            Ok(Ok(batch)) => samples.extend(batch),
            Ok(Err(err)) => tracing::debug!(%err, "sampler failed"),
            Err(_) => tracing::debug!("sampler timed out"),
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_label_sets_and_ignores_prefixes() {
        let text = "# HELP x\n# TYPE autoscaler_desired_replicas gauge\n\
            autoscaler_desired_replicas{deployment=\"a\"} 3\n\
            autoscaler_desired_replicas{deployment=\"b\"} 2 1700000000\n\
            autoscaler_desired_replicas_total 99\n\
            up 1\n";
        assert_eq!(metric_sum(text, "autoscaler_desired_replicas"), Some(5.0));
        assert_eq!(metric_sum(text, "up"), Some(1.0));
        assert_eq!(metric_sum(text, "missing"), None);
    }

    #[tokio::test]
    async fn failing_and_slow_samplers_leave_gaps() {
        struct Failing;
        impl Sampler for Failing {
            fn sample(&self) -> BoxFuture<'_, anyhow::Result<Vec<Sample>>> {
                Box::pin(async { anyhow::bail!("unreachable") })
            }
        }
        struct Slow;
        impl Sampler for Slow {
            fn sample(&self) -> BoxFuture<'_, anyhow::Result<Vec<Sample>>> {
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(vec![])
                })
            }
        }
        let samplers: Vec<std::sync::Arc<dyn Sampler>> = vec![
            std::sync::Arc::new(Failing),
            std::sync::Arc::new(Slow),
            std::sync::Arc::new(FnSampler(|| {
                vec![Sample::new("replicas", SeriesKind::Replicas, 2.0)]
            })),
        ];
        let samples = sample_all(&samplers, Duration::from_millis(50)).await;
        assert_eq!(
            samples,
            [Sample::new("replicas", SeriesKind::Replicas, 2.0)]
        );
    }
}
