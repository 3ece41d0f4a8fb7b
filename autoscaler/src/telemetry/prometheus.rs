//! Telemetry from the Prometheus HTTP API: one instant query (`GET /api/v1/query`) per signal.
//!
//! The default PromQL works against the metric names of the dispatcher and inference services
//! and only uses what Prometheus 2.42 accepts. Divisions guard their denominator with `> 0`
//! so that an idle system yields "no value" rather than NaN.

use std::time::{Duration, Instant};

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{Telemetry, TelemetryError, TelemetrySource};

/// One PromQL expression per signal; an empty string skips the signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PromQueries {
    /// Requests/s entering the dispatcher.
    pub arrival_rate: String,
    pub queue_length: String,
    pub in_flight: String,
    /// Mean busy fraction of the inference workers.
    pub utilization: String,
    /// Requests/s one replica completes while busy.
    pub service_rate_per_pod: String,
    pub ready_replicas: String,
    /// Seconds since the freshest dispatcher sample was scraped (staleness).
    pub sample_age: String,
}

impl Default for PromQueries {
    fn default() -> Self {
        Self {
            arrival_rate: "sum(rate(dispatcher_enqueued_total[1m]))".into(),
            queue_length: "sum(dispatcher_queue_length)".into(),
            in_flight: "sum(dispatcher_in_flight)".into(),
            utilization: "sum(rate(inference_worker_busy_seconds_total[1m])) \
                          / (sum(inference_workers) > 0)"
                .into(),
            // ok completions per busy worker-second, times workers per replica.
            service_rate_per_pod: "sum(rate(inference_requests_total{outcome=\"ok\"}[5m])) \
                                   / (sum(rate(inference_worker_busy_seconds_total[5m])) > 0) \
                                   * sum(inference_workers) / count(inference_workers)"
                .into(),
            ready_replicas: "count(up{job=\"inference\"} == 1)".into(),
            sample_age: "time() - max(timestamp(dispatcher_queue_length))".into(),
        }
    }
}

/// Reads [`Telemetry`] from a Prometheus server.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    client: reqwest::Client,
    endpoint: Url,
    queries: PromQueries,
}

impl PrometheusSource {
    /// `base_url` is the server's root (`http://prometheus:9090`, or with a path prefix).
    pub fn new(base_url: &str, queries: PromQueries, timeout: Duration) -> Result<Self, String> {
        let mut base = Url::parse(base_url).map_err(|e| format!("{base_url:?}: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let endpoint = base
            .join("api/v1/query")
            .map_err(|e| format!("{base_url:?}: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            client,
            endpoint,
            queries,
        })
    }

    /// Runs one instant query: the sum of the returned series, `None` for an empty result.
    pub async fn query(&self, promql: &str) -> Result<Option<f64>, TelemetryError> {
        if promql.trim().is_empty() {
            return Ok(None);
        }
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().append_pair("query", promql);
        let shown = self.endpoint.to_string();
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| TelemetryError::unreachable(&shown, e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| TelemetryError::unreachable(&shown, e))?;
        let parsed: ApiResponse = serde_json::from_slice(&body).map_err(|e| {
            if status.is_success() {
                TelemetryError::Malformed {
                    url: shown.clone(),
                    detail: e.to_string(),
                }
            } else {
                TelemetryError::Status {
                    url: shown.clone(),
                    status: status.as_u16(),
                    detail: String::from_utf8_lossy(&body).chars().take(200).collect(),
                }
            }
        })?;
        if parsed.status != "success" || !status.is_success() {
            return Err(TelemetryError::Status {
                url: shown,
                status: status.as_u16(),
                detail: format!(
                    "{}: {} (query {promql:?})",
                    parsed.error_type.unwrap_or_default(),
                    parsed.error.unwrap_or_default()
                ),
            });
        }
        match parsed.data {
            Some(Data::Vector(samples)) => samples
                .iter()
                .map(|s| parse_value(&s.value.1))
                .try_fold(None, |acc: Option<f64>, v| {
                    v.map(|v| Some(acc.unwrap_or(0.0) + v))
                })
                .ok_or_else(|| TelemetryError::Malformed {
                    url: shown,
                    detail: "a sample value is not a number".into(),
                }),
            Some(Data::Scalar((_, value))) => {
                parse_value(&value)
                    .map(Some)
                    .ok_or_else(|| TelemetryError::Malformed {
                        url: shown,
                        detail: format!("scalar {value:?} is not a number"),
                    })
            }
            Some(Data::Unsupported) | None => Err(TelemetryError::Malformed {
                url: shown,
                detail: format!("query {promql:?} must return a vector or a scalar"),
            }),
        }
    }

    /// An optional signal: a failure is logged and reads as "no value".
    async fn optional(&self, promql: &str) -> Option<f64> {
        match self.query(promql).await {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(%err, query = promql, "prometheus query failed");
                None
            }
        }
    }
}

impl TelemetrySource for PrometheusSource {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    async fn read(&mut self, now: Instant) -> Result<Telemetry, TelemetryError> {
        let q = &self.queries;
        let (arrival, queue, in_flight, utilisation, service, ready, age) = tokio::join!(
            self.query(&q.arrival_rate),
            self.optional(&q.queue_length),
            self.optional(&q.in_flight),
            self.optional(&q.utilization),
            self.optional(&q.service_rate_per_pod),
            self.optional(&q.ready_replicas),
            self.optional(&q.sample_age),
        );
        let observed_at = age
            .filter(|a| a.is_finite() && *a > 0.0)
            .and_then(|a| Duration::try_from_secs_f64(a).ok())
            .and_then(|a| now.checked_sub(a))
            .unwrap_or(now);
        Ok(Telemetry {
            observed_at,
            arrival_rate: arrival?,
            queue_length: queue,
            in_flight,
            utilisation,
            service_rate_per_pod: service,
            ready_replicas: ready,
        })
    }
}

/// Prometheus sample values are strings: numbers, `NaN`, `+Inf`, `-Inf`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse {
    status: String,
    data: Option<Data>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "camelCase")]
enum Data {
    Vector(Vec<VectorSample>),
    Scalar((f64, String)),
    /// `matrix` and `string`: not what an instant query for a number should return.
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    value: (f64, String),
}
