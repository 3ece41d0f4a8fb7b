//! The open-loop generator: sends each request of the plan at its intended time, whatever
//! happened to the earlier ones.
//!
//! Pacing runs on a dedicated OS thread. Tokio's timer has millisecond granularity, which alone
//! would cost up to a millisecond of lag on every send; `std::thread::sleep` wakes within tens
//! of microseconds. The thread hands each due request to the runtime as its own task, so a slow
//! answer delays nothing but itself. A generous concurrency cap bounds the tasks in flight;
//! when it is reached the pacer waits for a free slot and the wait is *recorded as schedule
//! lag* (and counted as a cap hit): requests are sent late, never skipped.
//!
//! Against the dispatcher a send ends with `/enqueue`'s answer and the request's record comes
//! later. Against a model server directly ([`DirectSends`]) the send task awaits the answer
//! itself and writes the outcome into the ledger, latency measured from the intended send time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use harness_core::ApiErrorBody;
use http::{Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reqwest::Url;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::image_pool::ImagePool;
use crate::ledger::{EnqueueOutcome, request_id};
use crate::metrics::Metrics;
use crate::schedule::{Plan, Slot};
use crate::store::RunState;
use crate::target::{DirectAnswer, DirectRequest, DirectTarget};

/// The longest the pacer sleeps before looking at the cancellation token again.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// What the pacer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacerReport {
    /// Requests handed to the runtime.
    pub launched: u64,
    /// True when cancellation stopped the schedule before its end.
    pub cancelled: bool,
}

/// The part of a `/enqueue` 202 answer the sender reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcceptedBody {
    #[serde(default)]
    instance_id: String,
}

/// The HTTP client of the send path: hyper's pooled client without reqwest's conveniences
/// (redirects, URL parsing per request, decompression), which cost CPU on every request and
/// so, at high rates, schedule lag.
pub struct EnqueueClient {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    timeout: Duration,
}

impl EnqueueClient {
    /// A client for `POST <enqueue_url>` (or a model server's inference URL); `timeout` bounds
    /// each whole exchange.
    pub fn new(enqueue_url: &Url, timeout: Duration) -> Result<Self, http::uri::InvalidUri> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            client,
            uri: enqueue_url.as_str().parse()?,
            timeout,
        })
    }

    /// Sends one body; a failure is an outcome, not an error. With an acceptance comes the
    /// id of the dispatcher instance that holds the item, when the answer names one.
    async fn post(&self, body: Vec<u8>) -> (EnqueueOutcome, Option<String>) {
        let (status, body) = match self
            .exchange(Bytes::from(body), "application/json", None)
            .await
        {
            Ok((status, _, body)) => (status, body),
            Err(kind) => return (EnqueueOutcome::Error { kind }, None),
        };
        if status.is_success() {
            // The dispatcher has the item whether or not its answer body arrived in full.
            let instance = body
                .and_then(|b| serde_json::from_slice::<AcceptedBody>(&b).ok())
                .map(|b| b.instance_id)
                .filter(|id| !id.is_empty());
            return (EnqueueOutcome::Accepted, instance);
        }
        let code = body
            .and_then(|b| serde_json::from_slice::<ApiErrorBody>(&b).ok())
            .map(|b| b.error.code)
            .unwrap_or_else(|| format!("http_{}", status.as_u16()));
        (EnqueueOutcome::Rejected { code }, None)
    }

    /// One POST: the status, the `Inference-Header-Content-Length` and the body (`None` if it
    /// broke off), or the kind of failure when no answer came: `connect_error`, `timeout` or
    /// `request_error`.
    pub(crate) async fn exchange(
        &self,
        body: Bytes,
        content_type: &'static str,
        header_length: Option<usize>,
    ) -> Result<(http::StatusCode, Option<usize>, Option<Bytes>), &'static str> {
        let mut request =
            Request::post(self.uri.clone()).header(http::header::CONTENT_TYPE, content_type);
        if let Some(length) = header_length {
            request = request.header(harness_core::oip::HEADER_CONTENT_LENGTH, length);
        }
        let Ok(request) = request.body(Full::new(body)) else {
            return Err("request_error");
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let header_length = response
                .headers()
                .get(harness_core::oip::HEADER_CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok());
            // Read the whole body so the connection goes back to the pool.
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            Ok::<_, hyper_util::client::legacy::Error>((status, header_length, body.ok()))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err("timeout"),
            Ok(Err(err)) if err.is_connect() => Err("connect_error"),
            Ok(Err(_)) => Err("request_error"),
            Ok(Ok(answer)) => Ok(answer),
        }
    }
}

/// A direct mode's target and every pool image's request, built once before the run.
pub struct DirectSends {
    pub target: DirectTarget,
    /// In pool order: request `seq` sends `requests[seq % len]`, the pool's image for it.
    pub requests: Vec<DirectRequest>,
}

/// Everything a send needs, shared by all send tasks of a run.
pub struct Generator {
    /// Posts to the dispatcher's `/enqueue`, or to the direct target's inference URL.
    pub client: EnqueueClient,
    pub pool: Arc<ImagePool>,
    pub run: Arc<RunState>,
    pub metrics: Metrics,
    /// `Some` in the direct modes.
    pub direct: Option<DirectSends>,
}

impl Generator {
    /// Runs `plan` to its end (or until `cancel`), then waits for every send to finish.
    /// Sends are bounded by the client's request timeout, so this returns.
    pub async fn run(
        self: Arc<Self>,
        plan: Arc<Plan>,
        concurrency: usize,
        cancel: CancellationToken,
    ) -> std::io::Result<PacerReport> {
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(concurrency.max(1)));
        let (done_tx, done_rx) = oneshot::channel();
        let pacer = {
            let (generator, tracker, cancel) = (self.clone(), tracker.clone(), cancel.clone());
            let runtime = Handle::current();
            move || {
                let report = generator.pace(&plan, &limit, &runtime, &tracker, &cancel);
                let _ = done_tx.send(report);
            }
        };
        std::thread::Builder::new()
            .name("loadtest-pacer".into())
            .spawn(pacer)?;
        // The sender only drops without sending if the pacer thread panicked.
        let report = done_rx.await.unwrap_or(PacerReport {
            launched: 0,
            cancelled: true,
        });
        tracker.close();
        tracker.wait().await;
        Ok(report)
    }

    /// The pacer thread's loop.
    fn pace(
        self: &Arc<Self>,
        plan: &Plan,
        limit: &Arc<Semaphore>,
        runtime: &Handle,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
    ) -> PacerReport {
        let mut report = PacerReport::default();
        for slot in plan.slots() {
            if !sleep_until(self.run.start + slot.offset, cancel) {
                report.cancelled = true;
                break;
            }
            let permit = match limit.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    self.run.on_cap_hit();
                    let wait = async {
                        tokio::select! {
                            permit = limit.clone().acquire_owned() => permit.ok(),
                            () = cancel.cancelled() => None,
                        }
                    };
                    // Not a runtime thread, so blocking on the runtime here is allowed.
                    match runtime.block_on(wait) {
                        Some(permit) => permit,
                        None => {
                            report.cancelled = true;
                            break;
                        }
                    }
                }
            };
            tracker.spawn_on(self.clone().send(slot, permit), runtime);
            report.launched += 1;
        }
        report
    }

    /// Sends one request and records what happened to it.
    async fn send(self: Arc<Self>, slot: Slot, _permit: OwnedSemaphorePermit) {
        let start = self.run.start;
        let intended = start + slot.offset;
        let started = Instant::now();
        let lag = started.saturating_duration_since(intended);
        self.run.on_sent(slot.seq, lag, started - start);
        self.metrics.requests_sent.inc();
        self.metrics.schedule_lag.observe(lag.as_secs_f64());
        if let Some(direct) = &self.direct {
            return self.send_direct(direct, slot.seq, intended).await;
        }

        let id = request_id(self.run.id(), slot.seq);
        let body = enqueue_body(&self.pool.for_request(slot.seq).base64, &id);
        let (outcome, instance) = self.client.post(body).await;

        let done = Instant::now();
        let outcomes = &self.metrics.enqueue_outcomes;
        match outcome {
            EnqueueOutcome::Accepted => outcomes.accepted.inc(),
            EnqueueOutcome::Rejected { .. } => outcomes.rejected.inc(),
            EnqueueOutcome::Error { .. } => outcomes.error.inc(),
        }
        let since_intended = done.saturating_duration_since(intended);
        let restart = self.run.on_enqueue(
            slot.seq,
            outcome,
            instance.as_deref(),
            since_intended,
            done - start,
        );
        if let Some(restart) = restart {
            self.run.dispatcher_restarted(&restart);
        }
    }
}

impl Generator {
    /// Sends request `seq` to the model server and writes its outcome into the ledger.
    async fn send_direct(&self, direct: &DirectSends, seq: u64, intended: Instant) {
        let Some(request) = direct
            .requests
            .get((seq % direct.requests.len().max(1) as u64) as usize)
        else {
            return;
        };
        let exchange = self
            .client
            .exchange(
                request.body.clone(),
                request.content_type,
                request.header_length,
            )
            .await;
        let done = Instant::now();
        let answer = match exchange {
            Ok((status, header_length, Some(body))) => {
                Ok(direct.target.read(status, header_length, &body))
            }
            Ok((_, _, None)) => Err("request_error"),
            Err(kind) => Err(kind),
        };
        let outcomes = &self.metrics.enqueue_outcomes;
        match &answer {
            Ok(DirectAnswer::Rejected { .. }) => outcomes.rejected.inc(),
            Ok(_) => outcomes.accepted.inc(),
            Err(_) => outcomes.error.inc(),
        }
        self.run.on_direct(
            seq,
            answer,
            done.saturating_duration_since(intended),
            done - self.run.start,
        );
    }
}

/// Sleeps until `due`; false if cancelled first.
fn sleep_until(due: Instant, cancel: &CancellationToken) -> bool {
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(CANCEL_POLL));
    }
}

/// `{"image":"<base64>","id":"<id>"}` without a serializer: base64 and our ids contain no
/// character JSON needs to escape, and this runs once per request with a large payload.
pub fn enqueue_body(image_base64: &str, id: &str) -> Vec<u8> {
    const HEAD: &[u8] = br#"{"image":""#;
    const MIDDLE: &[u8] = br#"","id":""#;
    const TAIL: &[u8] = br#""}"#;
    let mut body =
        Vec::with_capacity(HEAD.len() + image_base64.len() + MIDDLE.len() + id.len() + TAIL.len());
    body.extend_from_slice(HEAD);
    body.extend_from_slice(image_base64.as_bytes());
    body.extend_from_slice(MIDDLE);
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(TAIL);
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness_core::wire::EnqueueRequest;

    #[tokio::test]
    async fn failed_exchanges_are_counted_by_kind() {
        // Nobody listens: connection refused.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}/enqueue", closed.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(closed);
        let client = EnqueueClient::new(&url, Duration::from_secs(2)).unwrap();
        assert_eq!(
            client.post(b"{}".to_vec()).await.0,
            EnqueueOutcome::Error {
                kind: "connect_error"
            }
        );
        // Accepts the connection, never answers: the exchange times out.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}/enqueue", silent.local_addr().unwrap())
            .parse()
            .unwrap();
        let client = EnqueueClient::new(&url, Duration::from_millis(200)).unwrap();
        assert_eq!(
            client.post(b"{}".to_vec()).await.0,
            EnqueueOutcome::Error { kind: "timeout" }
        );
        drop(silent);
    }

    #[test]
    fn enqueue_body_is_the_wire_shape() {
        let body = enqueue_body("aGk=", "20250101T000000Z-ab12-7");
        let parsed: EnqueueRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed.into_parts().unwrap(),
            ("aGk=".into(), Some("20250101T000000Z-ab12-7".into()))
        );
    }
}
