//! The pull path: a run's latency records fetched from the dispatcher's
//! `GET /records?runId=…&after=…&wait=…` (a long poll), over the base URL the requests go to.
//!
//! [`probe`] asks once before the run whether the dispatcher offers it; [`Puller::run`] then
//! polls until the run stops waiting for records, stores every page in the run's ledger and
//! keeps the dispatcher's drop counts for the report. Its last requests acknowledge what it
//! holds, so the dispatcher frees it rather than letting it expire and count it as dropped.

use std::sync::Arc;
use std::time::Duration;

use harness_core::wire::RecordsPage;
use reqwest::{StatusCode, Url};
use tokio_util::sync::CancellationToken;

use crate::base_url::endpoint;
use crate::delivery::{PullStatus, RecordDelivery};
use crate::error::{Error, PullError};
use crate::metrics::Metrics;
use crate::store::RunState;

/// How long one poll waits on the dispatcher for a record.
const WAIT: &str = "10s";
/// Client-side limit of one poll: the wait plus room for a slow answer.
const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// Records per page.
const LIMIT: usize = 2000;
/// Longest pause between polls while the dispatcher cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Acknowledging pages after the run: at most this many requests, each this quick.
const FINAL_PAGES: usize = 50;
const FINAL_TIMEOUT: Duration = Duration::from_secs(3);

/// Polls one run's records.
#[derive(Debug, Clone)]
pub struct Puller {
    client: reqwest::Client,
    url: Url,
    run: Arc<RunState>,
    metrics: Metrics,
}

/// Asks the dispatcher whether it offers `GET /records`, as `mode` requires: the run's pull
/// status, or an error when `--record-delivery pull` cannot be honoured.
pub async fn probe(
    client: &reqwest::Client,
    dispatcher: &Url,
    run_id: &str,
    mode: RecordDelivery,
) -> Result<PullStatus, Error> {
    if mode == RecordDelivery::Push {
        tracing::info!(run_id, "records: push only (--record-delivery push)");
        return Ok(PullStatus::Off);
    }
    let url = endpoint(dispatcher, "records");
    let status = match poll(client, &url, run_id, 0, "0s", FINAL_TIMEOUT).await {
        Ok(_) => PullStatus::Active,
        Err(PullError::NotOffered(_)) if mode == RecordDelivery::Auto => PullStatus::Unavailable,
        Err(err) => {
            return Err(Error::RecordsUnavailable {
                url: url.to_string(),
                source: err,
            });
        }
    };
    match status {
        PullStatus::Active => tracing::info!(
            run_id,
            %url,
            "records: pulling them from the dispatcher (pushes to /storeLatency count too)"
        ),
        _ => tracing::info!(
            run_id,
            %url,
            "records: the dispatcher offers no GET /records; only pushes to /storeLatency arrive"
        ),
    }
    Ok(status)
}

impl Puller {
    pub fn new(
        client: reqwest::Client,
        dispatcher: &Url,
        run: Arc<RunState>,
        metrics: Metrics,
    ) -> Self {
        Self {
            client,
            url: endpoint(dispatcher, "records"),
            run,
            metrics,
        }
    }

    /// Polls until `stop`, then acknowledges what it holds (storing any last records).
    pub async fn run(self, stop: CancellationToken) {
        let mut after = 0;
        let mut backoff = Duration::ZERO;
        let mut failing = false;
        loop {
            let polled = tokio::select! {
                polled = poll(&self.client, &self.url, self.run.id(), after, WAIT, POLL_TIMEOUT) => polled,
                () = stop.cancelled() => break,
            };
            match polled {
                Ok(page) => {
                    if failing {
                        tracing::info!(url = %self.url, "GET /records reachable again");
                        failing = false;
                    }
                    backoff = Duration::ZERO;
                    after = self.take(page).await;
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(%err, url = %self.url, "cannot pull records; retrying");
                        failing = true;
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }
        self.acknowledge(after).await;
    }

    /// Asks without waiting until a page comes back empty: stores the records that came
    /// meanwhile, and the empty page acknowledges everything.
    async fn acknowledge(&self, mut after: u64) {
        for _ in 0..FINAL_PAGES {
            match poll(
                &self.client,
                &self.url,
                self.run.id(),
                after,
                "0s",
                FINAL_TIMEOUT,
            )
            .await
            {
                Ok(page) if page.records.is_empty() => {
                    self.take(page).await;
                    return;
                }
                Ok(page) => after = self.take(page).await,
                Err(err) => {
                    tracing::warn!(%err, url = %self.url, "could not acknowledge the last pulled records; the dispatcher keeps them until its retention passes");
                    return;
                }
            }
        }
    }

    /// Collects what the dispatcher still holds for the run, for a rebuild after a crash: pages
    /// without waiting, until one comes back empty (which acknowledges the rest) or `timeout`
    /// passes. Each page is in the journal before the next poll acknowledges it.
    pub async fn collect(&self, timeout: Duration) -> Result<(), PullError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut after = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(PullError::Incomplete(timeout));
            }
            let id = self.run.id();
            let page = poll(
                &self.client,
                &self.url,
                id,
                after,
                "0s",
                left.min(POLL_TIMEOUT),
            )
            .await?;
            let empty = page.records.is_empty();
            after = self.take(page).await;
            if empty {
                return Ok(());
            }
        }
    }

    /// Stores a page and returns its cursor once the page is in the run's journal: the next
    /// poll acknowledges it, and the dispatcher forgets it.
    async fn take(&self, page: RecordsPage) -> u64 {
        // Before the records: a page of a new instance carries none of the dead one's.
        self.run.observe_dispatcher(&page.instance_id);
        if !page.records.is_empty() {
            self.run.store_pulled(&page.records, &self.metrics);
        }
        self.run.set_dispatcher_dropped(page.dropped);
        self.run.journal.sync().await;
        page.cursor
    }
}

/// One `GET /records`.
async fn poll(
    client: &reqwest::Client,
    url: &Url,
    run_id: &str,
    after: u64,
    wait: &str,
    timeout: Duration,
) -> Result<RecordsPage, PullError> {
    let mut url = url.clone();
    url.query_pairs_mut()
        .append_pair("runId", run_id)
        .append_pair("after", &after.to_string())
        .append_pair("wait", wait)
        .append_pair("limit", &LIMIT.to_string());
    let response = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(PullError::Request)?;
    match response.status() {
        s if s.is_success() => response.json().await.map_err(PullError::Request),
        s @ (StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) => {
            Err(PullError::NotOffered(s))
        }
        status => Err(PullError::Status {
            status,
            body: response.text().await.unwrap_or_default(),
        }),
    }
}
