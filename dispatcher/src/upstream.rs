//! Sending one item to inference: attempts, retries on another endpoint, and the outcome.
//!
//! A connect error, a timeout or a 5xx (503 is inference's "queue full") ejects the endpoint and
//! the item is retried elsewhere after `--retry-backoff` (doubling), up to `--max-attempts`.
//! A 4xx is final: the image is bad, and another pod would say the same; its outcome is the
//! error code of inference's JSON body. A failed item is data (an outcome in its record), not
//! an error of the dispatcher.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use harness_core::ApiErrorBody;
use harness_core::wire::{InferResponse, Outcome};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::balancer::{Balancer, Endpoint, Permit};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::queue::Item;
use crate::record::{self, Attempts, Finished, Recorder};

/// Longest error code taken over from an inference response as an outcome label.
const MAX_CODE_LEN: usize = 64;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    Ok {
        label: Option<String>,
    },
    /// Final failure with this outcome; the endpoint worked.
    Final {
        code: Outcome,
    },
    /// Worth trying elsewhere; the endpoint is ejected.
    Retry {
        code: Outcome,
    },
}

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
        let body = match infer_body(&item.image) {
            Ok(body) => body,
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
            let (attempt, status) = self.attempt(&endpoint, body.clone()).await;
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

    async fn attempt(&self, endpoint: &Endpoint, body: Bytes) -> (Attempt, Option<StatusCode>) {
        let _timer = self.metrics.upstream_duration.start_timer();
        let sent = self
            .client
            .post(endpoint.infer_url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(self.timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return (transport_failure(&err, &endpoint.base), None),
        };
        let status = response.status();
        match response.bytes().await {
            Ok(body) => (classify(status, &body), Some(status)),
            Err(err) => (transport_failure(&err, &endpoint.base), Some(status)),
        }
    }
}

/// `{"image":"<base64>"}` for `POST /infer`, built once per item and shared by its attempts.
fn infer_body(image: &[u8]) -> anyhow::Result<Bytes> {
    /// [`InferRequest`]'s shape, borrowing the queued image.
    #[derive(serde::Serialize)]
    struct InferBody<'a> {
        image: &'a str,
    }
    let image = std::str::from_utf8(image)?;
    Ok(Bytes::from(serde_json::to_vec(&InferBody { image })?))
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

/// Turns an inference response into an attempt outcome.
fn classify(status: StatusCode, body: &[u8]) -> Attempt {
    match status {
        s if s.is_success() => match serde_json::from_slice::<InferResponse>(body) {
            Ok(r) => Attempt::Ok {
                label: r.predictions.into_iter().next().map(|p| p.label),
            },
            Err(_) => Attempt::Final {
                code: Outcome::UpstreamBadResponse,
            },
        },
        StatusCode::SERVICE_UNAVAILABLE => Attempt::Retry {
            code: Outcome::UpstreamUnavailable,
        },
        // Overload and slowness are about the pod, not the image.
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => Attempt::Retry {
            code: Outcome::UpstreamUnavailable,
        },
        s if s.is_server_error() => Attempt::Retry {
            code: Outcome::UpstreamServerError,
        },
        s if s.is_client_error() => Attempt::Final {
            code: error_code(body).map_or(Outcome::UpstreamRejected, Outcome::Rejected),
        },
        _ => Attempt::Final {
            code: Outcome::UpstreamBadResponse,
        },
    }
}

/// The `error.code` of an inference error body, if it looks like one of our codes. Outcomes are
/// metric labels, so anything else is folded into one value to keep the label set bounded.
fn error_code(body: &[u8]) -> Option<String> {
    let code = serde_json::from_slice::<ApiErrorBody>(body)
        .ok()?
        .error
        .code;
    let well_formed = !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    well_formed.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).expect("json")
    }

    #[test]
    fn the_infer_body_is_an_infer_request() {
        let body = infer_body(b"data:image/png;base64,aGk=").expect("utf-8");
        let request: harness_core::wire::InferRequest =
            serde_json::from_slice(&body).expect("inference's request type");
        assert_eq!(request.image, "data:image/png;base64,aGk=");
    }

    #[test]
    fn classifies_responses() {
        let ok = body(json!({
            "predictions": [{"label": "espresso", "classId": 967, "score": 0.9}],
            "model": "m",
            "timingMs": {"decode": 1.0, "preprocess": 1.0, "inference": 1.0, "total": 3.0}
        }));
        assert_eq!(
            classify(StatusCode::OK, &ok),
            Attempt::Ok {
                label: Some("espresso".into())
            }
        );
        assert_eq!(
            classify(StatusCode::OK, b"nope"),
            Attempt::Final {
                code: "upstream_bad_response".into()
            }
        );
        let bad = body(json!({"error": {"code": "invalid_image", "message": "not an image"}}));
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, &bad),
            Attempt::Final {
                code: "invalid_image".into()
            }
        );
        let odd = body(json!({"error": {"code": "Weird Code!", "message": ""}}));
        assert_eq!(
            classify(StatusCode::UNPROCESSABLE_ENTITY, &odd),
            Attempt::Final {
                code: "upstream_rejected".into()
            }
        );
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b""),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, b""),
            Attempt::Retry {
                code: Outcome::UpstreamServerError
            }
        ));
    }
}
