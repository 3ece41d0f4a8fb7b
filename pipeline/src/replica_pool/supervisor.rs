//! The pool's supervisor: replicas that end by themselves are unpublished and, after a
//! back-off that grows with repeated crashes, replaced (the kubelet's CrashLoopBackOff).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use harness_core::sync::lock;

use super::ReplicaPool;
use crate::error::Error;

/// The first restart delay after a crash; it doubles with every further crash.
const RESTART_DELAY: Duration = Duration::from_secs(1);
/// The longest restart delay.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A crash after this long without one starts the back-off over.
const BACKOFF_RESET: Duration = Duration::from_secs(60);

/// Replaces crashed replicas until the pool shuts down or is dropped.
pub(super) async fn supervise(
    pool: Weak<ReplicaPool>,
    exited: Arc<Notify>,
    stop_all: CancellationToken,
) {
    let mut backoff = RestartBackoff::default();
    loop {
        tokio::select! {
            () = exited.notified() => {}
            () = stop_all.cancelled() => return,
        }
        let removed = match pool.upgrade() {
            Some(pool) => pool.remove_crashed().await,
            None => return,
        };
        if removed == 0 {
            continue;
        }
        let delay = backoff.next(Instant::now());
        tracing::info!(?delay, "restarting crashed replicas after a back-off");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop_all.cancelled() => return,
        }
        let Some(pool) = pool.upgrade() else { return };
        // Back to the count the pool is set to (the autoscaler may have changed it meanwhile).
        let desired = pool.desired.load(Ordering::Relaxed);
        match pool.set_replicas(desired).await {
            Ok(()) | Err(Error::ShuttingDown) => {}
            Err(err) => tracing::error!(err = %err, "could not restart replicas"),
        }
    }
}

/// Restart delays: [`RESTART_DELAY`], doubling with each crash up to [`MAX_RESTART_DELAY`];
/// a crash [`BACKOFF_RESET`] after the previous one starts over.
#[derive(Debug, Default)]
struct RestartBackoff {
    last: Option<(Instant, Duration)>,
}

impl RestartBackoff {
    fn next(&mut self, now: Instant) -> Duration {
        let delay = match self.last {
            Some((at, previous)) if now.duration_since(at) < BACKOFF_RESET => {
                (previous * 2).min(MAX_RESTART_DELAY)
            }
            _ => RESTART_DELAY,
        };
        self.last = Some((now, delay));
        delay
    }
}

impl ReplicaPool {
    /// Takes every replica that has crashed out of the published set; returns how many.
    pub(super) async fn remove_crashed(&self) -> usize {
        let mut replicas = self.replicas.lock().await;
        if self.stop_all.is_cancelled() {
            return 0;
        }
        let from = replicas.len();
        let mut running = Vec::with_capacity(from);
        for mut replica in replicas.drain(..) {
            if !replica.crashed.load(Ordering::Acquire) {
                running.push(replica);
                continue;
            }
            // Its task ends right after setting the flag.
            let reason = match (&mut replica.task).await {
                Ok(Ok(())) => "ended without being asked to stop".to_owned(),
                Ok(Err(err)) => format!("{err:#}"),
                Err(join) => join.to_string(),
            };
            tracing::error!(url = %replica.url, %reason, "replica crashed; replacing it");
            *lock(&self.last_crash) = Some((replica.url, reason));
            self.crashes.fetch_add(1, Ordering::Relaxed);
        }
        *replicas = running;
        let removed = from - replicas.len();
        if removed > 0 {
            self.publish(&replicas);
            self.record(from as u32, replicas.len() as u32);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_doubles_up_to_its_cap_and_starts_over_after_a_quiet_minute() {
        let mut backoff = RestartBackoff::default();
        let t0 = Instant::now();
        let delays: Vec<u64> = (0..7)
            .map(|i| backoff.next(t0 + Duration::from_secs(i)).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        let quiet = t0 + Duration::from_secs(6) + BACKOFF_RESET;
        assert_eq!(backoff.next(quiet), RESTART_DELAY);
        assert_eq!(
            backoff.next(quiet + Duration::from_secs(1)),
            RESTART_DELAY * 2
        );
    }
}
