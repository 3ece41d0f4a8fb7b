//! Telemetry straight from the services' `/metrics`, without Prometheus: the local demo's
//! source, and a fallback in a cluster without one.
//!
//! The dispatcher's page gives the queue and the `dispatcher_enqueued_total` counter; the
//! arrival rate is its increase between two reads divided by the time between them (the
//! controller's clock). Inference replicas, listed statically or published on a watch channel
//! by the demo's pool, give `inference_worker_busy_seconds_total` and `inference_workers`,
//! hence utilisation, and the measured service rate per replica.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Exposition, Telemetry, TelemetryError, TelemetrySource};

/// Where the inference replicas' metrics are.
#[derive(Debug, Clone)]
pub enum InferenceTargets {
    /// No per-replica scraping (no utilisation).
    None,
    /// Full `/metrics` URLs.
    Static(Vec<String>),
    /// Base URLs (`http://127.0.0.1:41234`) kept current by the replica pool; `/metrics` is
    /// appended.
    Watch(watch::Receiver<Vec<String>>),
}

impl InferenceTargets {
    fn urls(&self) -> Vec<String> {
        match self {
            InferenceTargets::None => Vec::new(),
            InferenceTargets::Static(urls) => urls.clone(),
            InferenceTargets::Watch(rx) => rx
                .borrow()
                .iter()
                .map(|base| format!("{}/metrics", base.trim_end_matches('/')))
                .collect(),
        }
    }
}

/// Counters of one replica at one read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PodCounters {
    at: Instant,
    busy_seconds: f64,
    ok_requests: f64,
    workers: f64,
}

/// Reads the dispatcher's (and optionally the replicas') `/metrics` pages.
#[derive(Debug)]
pub struct ScrapeSource {
    client: reqwest::Client,
    dispatcher_url: String,
    inference: InferenceTargets,
    previous_enqueued: Option<(Instant, f64)>,
    previous_pods: HashMap<String, PodCounters>,
}

impl ScrapeSource {
    /// `dispatcher_url` is the full metrics URL (`http://127.0.0.1:8080/metrics`).
    pub fn new(
        dispatcher_url: impl Into<String>,
        inference: InferenceTargets,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            client,
            dispatcher_url: dispatcher_url.into(),
            inference,
            previous_enqueued: None,
            previous_pods: HashMap::new(),
        })
    }

    async fn read_dispatcher(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        let page = fetch(&self.client, &self.dispatcher_url).await?;
        let enqueued =
            page.sum("dispatcher_enqueued_total")
                .ok_or_else(|| TelemetryError::Malformed {
                    url: self.dispatcher_url.clone(),
                    detail: "no dispatcher_enqueued_total".into(),
                })?;
        let previous = self.previous_enqueued.replace((now, enqueued));
        let mut t = Telemetry::empty(now);
        t.queue_length = page.sum("dispatcher_queue_length");
        t.in_flight = page.sum("dispatcher_in_flight");
        match previous {
            Some((at, before)) if now > at => {
                t.arrival_rate = Some(increase(before, enqueued) / (now - at).as_secs_f64());
                Ok(t)
            }
            _ => Err(TelemetryError::WarmingUp(
                "the arrival rate needs two reads of dispatcher_enqueued_total".into(),
            )),
        }
    }

    /// Scrapes every replica concurrently and folds the counters into utilisation, ready
    /// replicas and service rate.
    async fn read_replicas(&mut self, now: Instant, t: &mut Telemetry) {
        let urls = self.inference.urls();
        if urls.is_empty() {
            return;
        }
        let mut scrapes = JoinSet::new();
        for url in urls.iter().cloned() {
            let client = self.client.clone();
            scrapes.spawn(async move {
                let page = fetch(&client, &url).await;
                (url, page)
            });
        }
        let (mut ready, mut busy, mut capacity, mut ok, mut workers) = (0u32, 0.0, 0.0, 0.0, 0.0);
        let mut current = HashMap::new();
        while let Some(joined) = scrapes.join_next().await {
            let Ok((url, page)) = joined else { continue };
            let page = match page {
                Ok(page) => page,
                Err(err) => {
                    tracing::debug!(%err, "replica did not answer: counted as not ready");
                    continue;
                }
            };
            let (Some(busy_seconds), Some(pod_workers)) = (
                page.sum("inference_worker_busy_seconds_total"),
                page.sum("inference_workers"),
            ) else {
                continue;
            };
            ready += 1;
            workers += pod_workers;
            let counters = PodCounters {
                at: now,
                busy_seconds,
                ok_requests: page
                    .sum_where("inference_requests_total", "outcome", "ok")
                    .unwrap_or(0.0),
                workers: pod_workers,
            };
            if let Some(before) = self.previous_pods.get(&url)
                && now > before.at
            {
                let dt = (now - before.at).as_secs_f64();
                busy += increase(before.busy_seconds, busy_seconds);
                ok += increase(before.ok_requests, counters.ok_requests);
                capacity += counters.workers * dt;
            }
            current.insert(url, counters);
        }
        // Replicas that left (or did not answer) are forgotten; a returning one starts afresh.
        self.previous_pods = current;
        t.ready_replicas = Some(f64::from(ready));
        if capacity > 0.0 {
            t.utilisation = Some((busy / capacity).min(1.0));
        }
        if busy > 0.0 && ready > 0 {
            t.service_rate_per_pod = Some(ok / busy * workers / f64::from(ready));
        }
    }
}

impl TelemetrySource for ScrapeSource {
    fn name(&self) -> &'static str {
        "dispatcher"
    }

    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        let mut t = self.read_dispatcher(now).await;
        match &mut t {
            Ok(t) => self.read_replicas(now, t).await,
            // Still prime the replicas' counters so that utilisation is there next time.
            Err(_) => self.read_replicas(now, &mut Telemetry::empty(now)).await,
        }
        t
    }
}

/// A counter's increase, treating a decrease as a restart from zero (Prometheus's rule).
fn increase(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Exposition, TelemetryError> {
    let unreachable = |e: reqwest::Error| TelemetryError::unreachable(url, e);
    let response = client.get(url).send().await.map_err(unreachable)?;
    let status = response.status();
    let text = response.text().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(TelemetryError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            detail: text.chars().take(200).collect(),
        });
    }
    Exposition::parse(&text).map_err(|e| TelemetryError::Malformed {
        url: url.to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_resets_count_from_zero() {
        assert_eq!(increase(100.0, 130.0), 30.0);
        assert_eq!(increase(100.0, 7.0), 7.0);
    }
}
