//! Where the inference endpoints come from, and the `/readyz` prober that brings them into
//! rotation.
//!
//! Three sources feed the [`Balancer`]: a static list (`--inference-url`), a DNS name resolved
//! every `--dns-refresh` to all its addresses (a Kubernetes headless Service lists every ready
//! pod), or a watch channel (the local demo's pool publishes its replicas there).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::balancer::{Balancer, Endpoint, ProbeResult};
use crate::config::{ConfiguredEndpoints, UrlError, parse_http_url};

/// How often the prober looks for endpoints due for a probe.
const PROBE_TICK: Duration = Duration::from_millis(100);
/// A `/readyz` that takes longer than this counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the dispatcher learns its inference endpoints (base URLs like `http://10.0.0.7:8000`).
#[derive(Debug, Clone)]
pub enum EndpointSource {
    /// A fixed list.
    Static(Vec<String>),
    /// `host:port` resolved every `refresh` to every address behind it.
    Dns {
        host_port: String,
        refresh: Duration,
    },
    /// The current list, replaced whenever the sender publishes a new one.
    Watch(watch::Receiver<Vec<String>>),
}

impl EndpointSource {
    /// Checks a static list up front: a typo should stop start-up, not hide in a log.
    pub(crate) fn validate(&self) -> Result<(), UrlError> {
        match self {
            EndpointSource::Static(urls) => {
                urls.iter().try_for_each(|u| parse_http_url(u).map(drop))
            }
            EndpointSource::Dns { host_port, .. } if !host_port.contains(':') => {
                Err(UrlError::NoPort {
                    raw: host_port.clone(),
                })
            }
            EndpointSource::Dns { .. } | EndpointSource::Watch(_) => Ok(()),
        }
    }
}

/// The source `--inference-url` or `--inference-dns` describes.
impl From<&ConfiguredEndpoints> for EndpointSource {
    fn from(configured: &ConfiguredEndpoints) -> Self {
        match configured {
            ConfiguredEndpoints::Static(urls) => {
                EndpointSource::Static(urls.iter().map(|u| u.to_string()).collect())
            }
            ConfiguredEndpoints::Dns { host_port, refresh } => EndpointSource::Dns {
                host_port: host_port.clone(),
                refresh: *refresh,
            },
        }
    }
}

/// Keeps the balancer's endpoint set in line with the source, for as long as the task runs.
pub(crate) async fn follow(source: EndpointSource, balancer: Arc<Balancer>) {
    match source {
        EndpointSource::Static(urls) => {
            balancer.set_endpoints(parse_all(&urls));
        }
        EndpointSource::Dns { host_port, refresh } => {
            follow_dns(&host_port, refresh, &balancer).await
        }
        EndpointSource::Watch(rx) => follow_watch(rx, &balancer).await,
    }
}

async fn follow_dns(host_port: &str, refresh: Duration, balancer: &Balancer) {
    let mut known: Option<BTreeSet<String>> = None;
    loop {
        match tokio::net::lookup_host(host_port).await {
            Ok(addrs) => {
                let urls: BTreeSet<String> = addrs.map(|a| format!("http://{a}")).collect();
                if known.as_ref() != Some(&urls) {
                    tracing::info!(%host_port, endpoints = urls.len(), "DNS endpoint set changed");
                    balancer.set_endpoints(parse_all(&urls));
                    known = Some(urls);
                }
            }
            // Keep the last known set: a DNS hiccup must not empty the pool.
            Err(err) => {
                tracing::warn!(%host_port, %err, "DNS lookup failed, keeping the last endpoint set")
            }
        }
        tokio::time::sleep(refresh).await;
    }
}

async fn follow_watch(mut rx: watch::Receiver<Vec<String>>, balancer: &Balancer) {
    loop {
        let urls = rx.borrow_and_update().clone();
        balancer.set_endpoints(parse_all(&urls));
        if rx.changed().await.is_err() {
            // The publisher is gone; the last set stays.
            return;
        }
    }
}

fn parse_all<'a>(urls: impl IntoIterator<Item = &'a String>) -> Vec<Url> {
    urls.into_iter()
        .filter_map(|u| match parse_http_url(u) {
            Ok(url) => Some(url),
            Err(err) => {
                tracing::error!(%err, "ignoring invalid endpoint URL");
                None
            }
        })
        .collect()
}

/// Probes due endpoints' `/readyz` concurrently, so one hanging pod cannot delay the others.
pub(crate) async fn probe_forever(client: reqwest::Client, balancer: Arc<Balancer>) {
    let mut probes: JoinSet<(Arc<Endpoint>, ProbeResult)> = JoinSet::new();
    let mut tick = tokio::time::interval(PROBE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for endpoint in balancer.due_probes() {
                    let client = client.clone();
                    probes.spawn(async move {
                        let result = probe(&client, &endpoint).await;
                        (endpoint, result)
                    });
                }
            }
            Some(joined) = probes.join_next() => {
                if let Ok((endpoint, result)) = joined {
                    balancer.probe_finished(&endpoint, result);
                }
            }
        }
    }
}

async fn probe(client: &reqwest::Client, endpoint: &Endpoint) -> ProbeResult {
    let response = client
        .get(endpoint.ready_url.clone())
        .timeout(PROBE_TIMEOUT)
        .send()
        .await;
    match response {
        Ok(r) => {
            let status = r.status();
            // Reading the (short) body lets the connection go back to the pool for reuse.
            let _ = r.bytes().await;
            if status == reqwest::StatusCode::OK {
                ProbeResult::Ready
            } else {
                tracing::debug!(endpoint = %endpoint.base, %status, "not ready");
                ProbeResult::NotReady
            }
        }
        Err(err) => {
            tracing::debug!(endpoint = %endpoint.base, %err, "probe failed");
            ProbeResult::Unreachable
        }
    }
}
