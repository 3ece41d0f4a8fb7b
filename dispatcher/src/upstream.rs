//! Sending one item upstream: attempts, retries on another endpoint, and the outcome.
//!
//! A connect error, a timeout or a 5xx (503 is inference's "queue full") ejects the endpoint and
//! the item is retried elsewhere after `--retry-backoff` (doubling), up to `--max-attempts`.
//! A 4xx is final: the image is bad, and another pod would say the same; its outcome is the
//! error code of the answer's body. A failed item is data (an outcome in its record), not an
//! error of the dispatcher. What the request looks like and how an answer reads depend on the
//! upstream protocol ([`crate::upstream_protocol`]); these rules do not.

use std::sync::Arc;
use std::time::Duration;

use harness_core::oip::HEADER_CONTENT_LENGTH;
use harness_core::wire::Outcome;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::balancer::{Balancer, Endpoint, Permit};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::queue::Item;
use crate::record::{self, Attempts, Finished, Recorder};
use crate::upstream_protocol::{Attempt, RequestError, UpstreamProtocol, UpstreamRequest};

/// Sends items upstream; shared by every in-flight item task.
#[derive(Debug)]
pub struct Upstream {
    client: reqwest::Client,
    balancer: Arc<Balancer>,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
    protocol: UpstreamProtocol,
    /// Fires at the shutdown deadline: in-flight items stop and are reported as `shutdown`.
    cancel: CancellationToken,
}

impl Upstream {
    /// An upstream with the timeout and retry settings of `settings`; `cancel` is the shutdown
    /// deadline.
    pub fn new(
        client: reqwest::Client,
        settings: &Settings,
        balancer: Arc<Balancer>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            timeout: settings.request_timeout,
            max_attempts: settings.max_attempts,
            backoff: settings.retry_backoff,
            protocol: settings.upstream.clone(),
            client,
            balancer,
            metrics,
            recorder,
            cancel,
        }
    }

    /// Works on one item until it is done, then records and reports it.
    pub async fn deliver(self: Arc<Self>, item: Item, permit: Permit) {
        let dispatched_at = Instant::now();
        let metrics = &self.metrics;
        metrics.in_flight.inc();
        metrics
            .queue_wait
            .observe((dispatched_at - item.enqueued_at).as_secs_f64());
        let mut attempts = Attempts::default();
        let finished = tokio::select! {
            finished = self.attempts(&item, permit, &mut attempts) => finished,
            () = self.cancel.cancelled() => Finished { outcome: Outcome::Shutdown, label: None },
        };
        metrics.in_flight.dec();
        self.recorder
            .finish(record::dispatched(&item, dispatched_at, attempts, finished));
    }

    async fn attempts(&self, item: &Item, first: Permit, progress: &mut Attempts) -> Finished {
        let request = match self.protocol.request(&item.image) {
            Ok(request) => request,
            Err(err @ RequestError::Payload(_)) => {
                tracing::debug!(%err, id = %item.id, "cannot decode the image");
                return failed(Outcome::Rejected("invalid_image".into()));
            }
            Err(err) => {
                tracing::error!(%err, id = %item.id, "cannot build the inference request");
                return failed(Outcome::Internal);
            }
        };
        let mut permit = first;
        let mut tried: Vec<Arc<str>> = Vec::new();
        loop {
            let endpoint = permit.endpoint().clone();
            progress.count += 1;
            progress.endpoint = Some(endpoint.base.to_string());
            let (attempt, status) = self.attempt(&endpoint, &request).await;
            progress.http_status = status.map(|s| s.as_u16());
            drop(permit);
            let code = match attempt {
                Attempt::Ok { label } => {
                    self.balancer.record_success(&endpoint);
                    return Finished {
                        outcome: Outcome::Ok,
                        label,
                    };
                }
                Attempt::Final { code } => {
                    self.balancer.record_success(&endpoint);
                    return failed(code);
                }
                Attempt::Retry { code } => code,
            };
            self.balancer.record_failure(&endpoint);
            if progress.count >= self.max_attempts {
                return failed(code);
            }
            tracing::debug!(id = %item.id, endpoint = %endpoint.base, %code, attempt = progress.count, "retrying");
            self.metrics.retries.inc();
            tried.push(endpoint.base.clone());
            tokio::time::sleep(self.backoff_before(progress.count + 1)).await;
            permit = self.balancer.acquire(&tried).await;
        }
    }

    /// `--retry-backoff` before the second attempt, doubling for each one after.
    fn backoff_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(16);
        self.backoff.saturating_mul(1 << doublings)
    }

    async fn attempt(
        &self,
        endpoint: &Endpoint,
        request: &UpstreamRequest,
    ) -> (Attempt, Option<StatusCode>) {
        let _timer = self.metrics.upstream_duration.start_timer();
        let mut builder = self
            .client
            .post(endpoint.infer_url.clone())
            .header(CONTENT_TYPE, request.content_type);
        if let Some(length) = request.header_length {
            builder = builder.header(HEADER_CONTENT_LENGTH, length);
        }
        let sent = builder
            .body(request.body.clone())
            .timeout(self.timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return (transport_failure(&err, &endpoint.base), None),
        };
        let status = response.status();
        let header_length = response
            .headers()
            .get(HEADER_CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        match response.bytes().await {
            Ok(body) => (
                self.protocol.classify(status, header_length, &body),
                Some(status),
            ),
            Err(err) => (transport_failure(&err, &endpoint.base), Some(status)),
        }
    }
}

fn failed(outcome: Outcome) -> Finished {
    Finished {
        outcome,
        label: None,
    }
}

fn transport_failure(err: &reqwest::Error, endpoint: &str) -> Attempt {
    tracing::debug!(%endpoint, %err, "upstream attempt failed");
    if err.is_timeout() {
        Attempt::Retry {
            code: Outcome::UpstreamTimeout,
        }
    } else if err.is_connect() {
        Attempt::Retry {
            code: Outcome::UpstreamConnectError,
        }
    } else {
        Attempt::Retry {
            code: Outcome::UpstreamConnectionError,
        }
    }
}
