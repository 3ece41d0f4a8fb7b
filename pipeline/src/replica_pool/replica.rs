//! One replica of the local pool: an [`inference::run`] on its own port, thread and runtime,
//! with the tokens that stop it gracefully or kill it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Error;

/// A running replica.
pub(super) struct Replica {
    pub(super) url: String,
    /// Starts the replica's graceful shutdown (a child of the pool's token).
    pub(super) stop: CancellationToken,
    /// Ends the replica at once: its runtime is dropped with every connection on it.
    pub(super) kill: CancellationToken,
    /// Ends when the replica's thread has finished.
    pub(super) task: JoinHandle<anyhow::Result<()>>,
    /// Set when the thread has ended without being asked to stop, just before the supervisor
    /// is woken (the task itself finishes a moment later).
    pub(super) crashed: Arc<AtomicBool>,
}

impl Replica {
    /// Starts a replica on a port of its own, on a thread and runtime of its own. `stop` is a
    /// child of `stop_all`; the replica's task, tracked by `tasks`, wakes `crash_notice` if
    /// the replica ends without having been asked to.
    pub(super) fn spawn(
        config: inference::Config,
        stop_all: &CancellationToken,
        tasks: &TaskTracker,
        crash_notice: &Arc<Notify>,
    ) -> Result<Self, Error> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(Error::Bind)?;
        listener.set_nonblocking(true).map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let url = format!("http://{addr}");
        let stop = stop_all.child_token();
        let kill = CancellationToken::new();
        let (finished, exited) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("replica-{}", addr.port()))
            .spawn({
                let (stop, kill, url) = (stop.clone(), kill.clone(), url.clone());
                move || {
                    let _ = finished.send(run_replica(listener, config, stop, kill, &url));
                }
            })
            .map_err(Error::ReplicaThread)?;
        let crashed = Arc::new(AtomicBool::new(false));
        let task = tasks.spawn({
            let (stop, notify, crashed) = (stop.clone(), crash_notice.clone(), crashed.clone());
            async move {
                let result = exited
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("replica thread panicked")));
                // A replica asked to stop is no news. One ended by `kill` has already left the
                // set, so the supervisor looks and finds nothing to do.
                if !stop.is_cancelled() {
                    crashed.store(true, Ordering::Release);
                    notify.notify_one();
                }
                result
            }
        });
        tracing::info!(%url, "replica starting");
        Ok(Self {
            url,
            stop,
            kill,
            task,
            crashed,
        })
    }
}

/// A replica's thread: its own runtime, serving until `stop` (graceful) or `kill` (at once).
fn run_replica(
    listener: std::net::TcpListener,
    config: inference::Config,
    stop: CancellationToken,
    kill: CancellationToken,
    url: &str,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("replica-io")
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        tokio::select! {
            served = inference::run(listener, config, stop.cancelled_owned()) => served,
            () = kill.cancelled() => Ok(()),
        }
    });
    // Dropping the runtime's tasks closes every connection the replica still holds.
    runtime.shutdown_background();
    if let Err(err) = &result {
        tracing::error!(%url, err = format!("{err:#}"), "replica failed");
    }
    result
}
