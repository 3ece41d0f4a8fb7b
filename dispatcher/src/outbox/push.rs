//! Pushing the outbox to the report URL (`POST /storeLatency`, a JSON array): batches of
//! `--report-batch-size`, or whatever is there every `--report-interval`. When the receiver is
//! down the batch goes back to the front of the outbox and the reporter retries with back-off;
//! finishing items never waits for it.

use std::sync::Arc;
use std::time::Duration;

use harness_core::wire::{DropReason, LatencyRecord};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Outbox;
use crate::metrics::Metrics;

/// One report POST that takes longer than this has failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between retries while the receiver is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a batch was not delivered. Every kind but [`SendError::Refused`] is worth another try.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// Unreachable or timed out.
    #[error("{0}")]
    Unreachable(#[source] reqwest::Error),
    /// 5xx, 408 or 429: the receiver is there but cannot take the batch now.
    #[error("{0}")]
    Unavailable(StatusCode),
    /// The shutdown flush ran out of time in the middle of a send.
    #[error("flush deadline")]
    FlushDeadline,
    /// The receiver refuses this batch (4xx): retrying the same bytes cannot help.
    #[error("receiver refused the batch with {0}")]
    Refused(StatusCode),
}

/// Sends the outbox to the report URL until told to stop, then flushes it.
#[derive(Debug)]
pub struct Reporter {
    pub client: reqwest::Client,
    pub url: Url,
    pub outbox: Arc<Outbox>,
    pub interval: Duration,
    pub metrics: Arc<Metrics>,
}

impl Reporter {
    /// Delivers until `closing` fires, then keeps trying for at most `flush_timeout` to deliver
    /// what is left.
    pub async fn run(self, closing: CancellationToken, flush_timeout: Duration) {
        let mut backoff = Backoff::new(self.interval);
        while !closing.is_cancelled() {
            tokio::select! {
                () = self.outbox.batch_ready.notified() => {}
                () = tokio::time::sleep(self.interval) => {}
                () = closing.cancelled() => break,
            }
            self.outbox.log_drops();
            while let Some(delay) = self.send_available(&mut backoff, None).await {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = closing.cancelled() => break,
                }
            }
        }
        self.flush(Instant::now() + flush_timeout, &mut backoff)
            .await;
    }

    /// Pushes what is left until `deadline`; what stays undelivered is the caller's to
    /// count (a puller may still collect it).
    async fn flush(&self, deadline: Instant, backoff: &mut Backoff) {
        while Instant::now() < deadline {
            match self.send_available(backoff, Some(deadline)).await {
                None => break,
                Some(delay) => {
                    tokio::time::sleep_until((Instant::now() + delay).min(deadline)).await
                }
            }
        }
        self.outbox.log_drops();
    }

    /// Sends batches until the outbox is empty (`None`) or a send fails (`Some(retry delay)`).
    async fn send_available(
        &self,
        backoff: &mut Backoff,
        deadline: Option<Instant>,
    ) -> Option<Duration> {
        loop {
            let batch = self.outbox.take_batch();
            if batch.is_empty() {
                return None;
            }
            let records: Vec<&LatencyRecord> = batch.iter().map(|e| &e.record).collect();
            let sent = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.send(&records))
                    .await
                    .unwrap_or(Err(SendError::FlushDeadline)),
                None => self.send(&records).await,
            };
            match sent {
                Ok(()) => {
                    if backoff.failing() {
                        tracing::info!(url = %self.url, "report URL reachable again");
                    }
                    backoff.reset();
                    self.metrics.delivery.pushed.inc_by(batch.len() as u64);
                }
                Err(SendError::Refused(status)) => {
                    self.metrics.delivery.push_failures.inc();
                    self.outbox.drop_batch(&batch, DropReason::Refused);
                    tracing::error!(%status, records = batch.len(), url = %self.url, "report refused; batch dropped");
                }
                Err(err) => {
                    self.metrics.delivery.push_failures.inc();
                    if !backoff.failing() {
                        tracing::warn!(%err, url = %self.url, "cannot deliver latency records; keeping them and retrying");
                    }
                    self.outbox.put_back(batch);
                    return Some(backoff.next());
                }
            }
        }
    }

    async fn send(&self, batch: &[&LatencyRecord]) -> Result<(), SendError> {
        let response = self
            .client
            .post(self.url.clone())
            .json(batch)
            .timeout(SEND_TIMEOUT)
            .send()
            .await
            .map_err(SendError::Unreachable)?;
        let status = response.status();
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                Err(SendError::Unavailable(status))
            }
            s if s.is_client_error() => Err(SendError::Refused(s)),
            s => Err(SendError::Unavailable(s)),
        }
    }
}

/// Exponential back-off between report retries, from the report interval up to [`MAX_BACKOFF`].
#[derive(Debug)]
struct Backoff {
    initial: Duration,
    current: Option<Duration>,
}

impl Backoff {
    fn new(initial: Duration) -> Self {
        Self {
            initial: initial.min(MAX_BACKOFF),
            current: None,
        }
    }

    fn failing(&self) -> bool {
        self.current.is_some()
    }

    fn next(&mut self) -> Duration {
        let next = match self.current {
            None => self.initial,
            Some(d) => (d * 2).min(MAX_BACKOFF),
        };
        self.current = Some(next);
        next
    }

    fn reset(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250));
        let seq: Vec<_> = (0..6).map(|_| b.next().as_millis()).collect();
        assert_eq!(seq, [250, 500, 1000, 2000, 4000, 5000]);
        b.reset();
        assert!(!b.failing());
        assert_eq!(b.next(), Duration::from_millis(250));
    }
}
