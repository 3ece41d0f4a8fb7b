//! The local replica pool: inference replicas inside this process, scaled like a Deployment.
//!
//! Each replica is its own [`inference::run`] on its own `127.0.0.1` port with its own worker
//! pool, and loads the model itself: that load is the replica's real cold start, during which
//! its `/readyz` answers 503. The pool publishes the replicas' base URLs on a
//! [`tokio::sync::watch`] channel; the dispatcher ([`dispatcher::EndpointSource::Watch`]) and
//! the autoscaler's scrape source follow it.
//!
//! A replica's life mirrors a pod's:
//! - **scale-up**: bind a port, start the replica, publish the new set at once. The dispatcher's
//!   prober takes the replica into rotation when `/readyz` turns 200.
//! - **scale-down**: the newest replicas go first (a ReplicaSet deletes not-ready and younger
//!   pods first). They leave the published set, then after [`PoolSettings::deregistration_delay`]
//!   their graceful shutdown starts: no new connections, in-flight requests finish. The delay
//!   plays the role of a pod's pre-stop hook, covering a dispatch already on its way.
//!
//! - **kill** ([`ReplicaPool::kill`], for fault tests and drills): the replica dies at once, as
//!   a pod does under `kubectl delete pod --grace-period=0`: its open connections are cut
//!   mid-request. The pool then does what a ReplicaSet does and starts a replacement.
//! - **crash**: a replica that ends without being asked to (its server failed, its thread
//!   panicked, or [`ReplicaPool::crash`] ended it unannounced, as an OOM kill would) is noticed
//!   by the pool's supervisor, taken out of the published set and replaced after a back-off of
//!   1 s, doubling with each further crash up to 30 s, and back to 1 s after a minute without
//!   one (the kubelet's CrashLoopBackOff, shortened for a local run).
//!
//! Each replica runs on a Tokio runtime of its own, on its own thread: a kill drops that
//! runtime, which closes every socket the replica had open, as the end of a process would.
//!
//! The pool may be empty (a minimum of 0, inference scaled to zero): nothing serves until the
//! autoscaler asks for a replica, and the dispatcher queues meanwhile. Each replica's cold
//! start, from its start to its first 200 on `/readyz`, is measured ([`ReplicaPool::cold_starts`]).
//!
//! The pool implements the autoscaler's [`ScaleTarget`]. Dropping it stops every replica.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use autoscaler::{ScaleTarget, TargetError};
use harness_core::sync::lock;
use serde::Serialize;
use tokio::sync::{Mutex, Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Error;

mod replica;
mod supervisor;

use replica::Replica;

/// How often [`ReplicaPool::wait_ready`] polls `/readyz`.
const READY_POLL: Duration = Duration::from_millis(50);

/// How the pool runs its replicas.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Replicas at start and the lowest count the pool accepts (0: scaled to zero until the
    /// autoscaler asks for a replica).
    pub min_replicas: u32,
    /// The highest count the pool accepts.
    pub max_replicas: u32,
    /// Every replica's configuration (`listen` is ignored: each binds `127.0.0.1:0`).
    pub inference: inference::Config,
    /// Time between a replica leaving the published set and the start of its shutdown.
    pub deregistration_delay: Duration,
}

/// One change of the pool's size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    /// Wall-clock time of the change, Unix epoch ms.
    pub at_unix_ms: f64,
    pub from: u32,
    pub to: u32,
}

/// Inference replicas in this process; see the module documentation.
pub struct ReplicaPool {
    settings: PoolSettings,
    /// An async mutex: resizing binds ports (awaits) and must not interleave with another
    /// resize, or two decisions could both act on the same old count.
    replicas: Mutex<Vec<Replica>>,
    /// The length of `replicas`, readable without the lock (samplers, `current_replicas`).
    size: AtomicU32,
    endpoints: watch::Sender<Vec<String>>,
    events: SyncMutex<Vec<ScaleEvent>>,
    /// Parent of every replica's stop token: cancelled by shutdown and on drop.
    stop_all: CancellationToken,
    /// Replica tasks, their delayed stops and the supervisor.
    tasks: TaskTracker,
    client: reqwest::Client,
    /// The count the pool is set to: the supervisor restores it after a crash.
    desired: AtomicU32,
    /// Woken when a replica's thread ends without having been asked to stop.
    exited: Arc<Notify>,
    /// Crashes so far, and the last one's replica and reason.
    crashes: AtomicU64,
    last_crash: SyncMutex<Option<(String, String)>>,
    /// Each replica's time from its start to its first 200 on `/readyz`, in order.
    cold_starts: Arc<SyncMutex<Vec<Duration>>>,
}

impl ReplicaPool {
    /// Starts `min_replicas` replicas and the supervisor that replaces crashed ones. The
    /// replicas load the model in the background; see [`ReplicaPool::wait_ready`].
    pub async fn start(settings: PoolSettings) -> Result<Arc<Self>, Error> {
        if settings.min_replicas > settings.max_replicas {
            return Err(Error::invalid(
                "max-replicas",
                format!("must be ≥ --min-replicas ({})", settings.min_replicas),
            ));
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(Error::HttpClient)?;
        let pool = Self {
            replicas: Mutex::new(Vec::new()),
            size: AtomicU32::new(0),
            endpoints: watch::Sender::new(Vec::new()),
            events: SyncMutex::new(Vec::new()),
            stop_all: CancellationToken::new(),
            tasks: TaskTracker::new(),
            client,
            desired: AtomicU32::new(settings.min_replicas),
            exited: Arc::new(Notify::new()),
            crashes: AtomicU64::new(0),
            last_crash: SyncMutex::new(None),
            cold_starts: Arc::default(),
            settings,
        };
        let pool = Arc::new(pool);
        let mut replicas = pool.replicas.lock().await;
        for _ in 0..pool.settings.min_replicas {
            replicas.push(pool.spawn_replica()?);
        }
        pool.publish(&replicas);
        drop(replicas);
        pool.tasks.spawn(supervisor::supervise(
            Arc::downgrade(&pool),
            pool.exited.clone(),
            pool.stop_all.clone(),
        ));
        Ok(pool)
    }

    /// A receiver of the replicas' base URLs (`http://127.0.0.1:41234`), oldest first.
    pub fn endpoints(&self) -> watch::Receiver<Vec<String>> {
        self.endpoints.subscribe()
    }

    /// The replica count the pool is set to, including replicas still loading the model.
    pub fn replicas(&self) -> u32 {
        self.size.load(Ordering::Relaxed)
    }

    /// Every change of size so far, in order.
    pub fn events(&self) -> Vec<ScaleEvent> {
        lock(&self.events).clone()
    }

    /// The cold start of every replica that has turned ready so far: the time from its start
    /// to its first 200 on `/readyz` (the model's load and warm-up).
    pub fn cold_starts(&self) -> Vec<Duration> {
        lock(&self.cold_starts).clone()
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Sets the number of replicas: starts new ones, or unpublishes and then gracefully stops
    /// the newest. Returns once the new set is published; stopping replicas finish their
    /// in-flight requests in the background.
    pub async fn set_replicas(&self, count: u32) -> Result<(), Error> {
        let (min, max) = (self.settings.min_replicas, self.settings.max_replicas);
        if !(min..=max).contains(&count) {
            return Err(Error::OutOfRange {
                requested: count,
                min,
                max,
            });
        }
        let mut replicas = self.replicas.lock().await;
        if self.stop_all.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        self.desired.store(count, Ordering::Relaxed);
        let from = replicas.len();
        let target = count as usize;
        let mut result = Ok(());
        if target > from {
            for _ in from..target {
                match self.spawn_replica() {
                    Ok(replica) => replicas.push(replica),
                    Err(err) => {
                        result = Err(err);
                        break;
                    }
                }
            }
        }
        let keep = target.min(replicas.len());
        let leaving = replicas.split_off(keep);
        // Unpublish before stopping: the dispatcher must stop choosing a replica before the
        // replica stops accepting connections.
        self.publish(&replicas);
        for replica in leaving {
            self.retire(replica);
        }
        if replicas.len() != from {
            self.record(from as u32, replicas.len() as u32);
        }
        result
    }

    /// Kills the replica serving `url` without a graceful shutdown (its in-flight requests
    /// fail with a cut connection), takes it out of the published set and starts a replacement,
    /// as a ReplicaSet would. Returns the replacement's URL; it loads the model before it turns
    /// ready.
    pub async fn kill(&self, url: &str) -> Result<String, Error> {
        let mut replicas = self.replicas.lock().await;
        if self.stop_all.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let index = replicas
            .iter()
            .position(|r| r.url == url)
            .ok_or_else(|| Error::UnknownReplica(url.to_owned()))?;
        let killed = replicas.remove(index);
        killed.kill.cancel();
        tracing::warn!(%url, "replica killed");
        self.publish(&replicas);
        let replacement = self.spawn_replica()?;
        let new_url = replacement.url.clone();
        replicas.insert(index, replacement);
        self.publish(&replicas);
        let _ = killed.task.await;
        Ok(new_url)
    }

    /// Waits until every current replica answers `/readyz` with 200. Fails if a replica
    /// crashes meanwhile (a model that cannot be loaded ends every replica that tries) or
    /// `timeout` passes.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let crashes_before = self.crashes();
        loop {
            if self.crashes() != crashes_before {
                let (url, reason) = lock(&self.last_crash).clone().unwrap_or_default();
                return Err(Error::ReplicaFailed { url, reason });
            }
            let urls = self.endpoints.borrow().clone();
            let mut pending = 0;
            for url in &urls {
                if !self.is_ready(url).await {
                    pending += 1;
                }
            }
            // A crash noticed while polling leaves a smaller set that may look ready.
            if pending == 0 && self.crashes() == crashes_before {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NotReady { pending, timeout });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Ends the replica serving `url` at once without telling the pool, as an OOM kill or a
    /// crash would (for drills and fault tests). The supervisor notices the end, unpublishes
    /// the replica and replaces it after the restart back-off; [`ReplicaPool::kill`] instead
    /// replaces it at once, as a deleted pod is.
    pub async fn crash(&self, url: &str) -> Result<(), Error> {
        let replicas = self.replicas.lock().await;
        let replica = replicas
            .iter()
            .find(|r| r.url == url)
            .ok_or_else(|| Error::UnknownReplica(url.to_owned()))?;
        replica.kill.cancel();
        Ok(())
    }

    /// Replicas that ended without being asked to, since the pool started.
    pub fn crashes(&self) -> u64 {
        self.crashes.load(Ordering::Relaxed)
    }

    /// Unpublishes every replica, stops them all and waits (at most `timeout`) for their
    /// in-flight requests to finish. The pool refuses to resize afterwards.
    pub async fn shutdown(&self, timeout: Duration) {
        let mut replicas = self.replicas.lock().await;
        self.stop_all.cancel();
        let from = replicas.len();
        replicas.clear();
        self.publish(&replicas);
        if from > 0 {
            self.record(from as u32, 0);
        }
        drop(replicas);
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(?timeout, "replicas did not stop in time");
        }
    }

    fn spawn_replica(&self) -> Result<Replica, Error> {
        let config = self.settings.inference.clone();
        let replica = Replica::spawn(config, &self.stop_all, &self.tasks, &self.exited)?;
        self.time_cold_start(&replica);
        Ok(replica)
    }

    /// Polls the new `replica`'s `/readyz` until it first answers 200 and records how long
    /// that took; gives up when the replica is stopped or killed before.
    fn time_cold_start(&self, replica: &Replica) {
        let started = Instant::now();
        let (client, url) = (self.client.clone(), replica.url.clone());
        let (stop, kill) = (replica.stop.clone(), replica.kill.clone());
        let cold_starts = self.cold_starts.clone();
        self.tasks.spawn(async move {
            while !(stop.is_cancelled() || kill.is_cancelled()) {
                if answers_ready(&client, &url).await {
                    let took = started.elapsed();
                    tracing::info!(%url, cold_start = ?took, "replica ready");
                    lock(&cold_starts).push(took);
                    return;
                }
                tokio::time::sleep(READY_POLL).await;
            }
        });
    }

    async fn is_ready(&self, base: &str) -> bool {
        answers_ready(&self.client, base).await
    }

    /// Stops a replica that has left the published set, after the deregistration delay.
    fn retire(&self, replica: Replica) {
        let delay = self.settings.deregistration_delay;
        self.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                // Shutdown of the whole pool: no reason to wait.
                () = replica.stop.cancelled() => {}
            }
            tracing::info!(url = %replica.url, "replica stopping");
            replica.stop.cancel();
            // The replica's own task is tracked too; this only orders the log line.
            let _ = replica.task.await;
            tracing::info!(url = %replica.url, "replica stopped");
        });
    }

    fn publish(&self, replicas: &[Replica]) {
        let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
        self.size.store(urls.len() as u32, Ordering::Relaxed);
        // `send_replace` also works with no receiver left.
        self.endpoints.send_replace(urls);
    }

    fn record(&self, from: u32, to: u32) {
        let event = ScaleEvent {
            at_unix_ms: harness_core::wire::now_unix_millis(),
            from,
            to,
        };
        tracing::info!(from, to, "pool resized");
        lock(&self.events).push(event);
    }
}

async fn answers_ready(client: &reqwest::Client, base: &str) -> bool {
    let response = client.get(format!("{base}/readyz")).send().await;
    response.is_ok_and(|r| r.status().is_success())
}

impl Drop for ReplicaPool {
    /// Starts every replica's graceful shutdown; their tasks end on their own.
    fn drop(&mut self) {
        self.stop_all.cancel();
    }
}

impl ScaleTarget for ReplicaPool {
    fn describe(&self) -> String {
        format!(
            "local pool ({}..={} replicas)",
            self.settings.min_replicas, self.settings.max_replicas
        )
    }

    async fn current_replicas(&self) -> Result<u32, TargetError> {
        Ok(self.replicas())
    }

    async fn scale_to(&self, replicas: u32) -> Result<(), TargetError> {
        self.set_replicas(replicas).await.map_err(TargetError::from)
    }
}
