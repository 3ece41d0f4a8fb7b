//! A fixed pool of dedicated worker threads behind a bounded waiting queue.
//!
//! Decoding, resizing and the model are CPU-bound and take tens of milliseconds: run on the async
//! executor they would stall every other connection, and `spawn_blocking`'s pool is large and
//! shared. Here `workers` OS threads each own a workspace `S` (resampler buffers, model state)
//! reused from job to job, and at most `queue_capacity` jobs may wait for a free worker. A job
//! beyond that is refused at once ([`Error::Overloaded`], a 503 with `Retry-After`) rather than
//! queued: a client or dispatcher can go elsewhere instead of waiting behind a backlog.
//!
//! `inference_queue_depth` and `inference_in_flight` change under the queue's lock, and a job's
//! busy time is added before its result is sent, so the gauges are exact whenever a client sees
//! a response.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::Error;
use crate::metrics::Metrics;

/// A queued job. It returns `false` if the work panicked, so that the worker can replace a
/// workspace that may have been left half-updated.
type Job<S> = Box<dyn FnOnce(&mut S) -> bool + Send>;

/// A bounded pool of worker threads, each with its own workspace `S`.
///
/// Dropping the pool closes it: workers finish the jobs already queued, then exit.
pub struct WorkerPool<S> {
    shared: Arc<Shared<S>>,
    workers: NonZeroUsize,
}

struct Shared<S> {
    state: Mutex<State<S>>,
    /// Signalled when a job is queued or the pool closes.
    available: Condvar,
    /// Jobs that may be admitted at once: one per worker plus the waiting queue.
    admit_limit: usize,
    metrics: Metrics,
}

struct State<S> {
    queue: VecDeque<Job<S>>,
    /// Jobs admitted and not finished: queued plus running.
    admitted: usize,
    closed: bool,
}

impl<S: Default + 'static> WorkerPool<S> {
    /// Starts `workers` threads named `inference-worker-N`, each creating its workspace with
    /// `S::default()`.
    pub fn new(
        workers: NonZeroUsize,
        queue_capacity: usize,
        metrics: Metrics,
    ) -> Result<Self, Error> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(workers.get() + queue_capacity),
                admitted: 0,
                closed: false,
            }),
            available: Condvar::new(),
            admit_limit: workers.get() + queue_capacity,
            metrics,
        });
        // Built before the threads so that an early return closes the ones already started.
        let pool = Self {
            shared: Arc::clone(&shared),
            workers,
        };
        for n in 0..workers.get() {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("inference-worker-{n}"))
                .spawn(move || worker_loop(&shared))
                .map_err(|err| Error::unexpected("cannot start worker thread", err))?;
        }
        shared.metrics.workers.set(workers.get() as i64);
        Ok(pool)
    }

    /// Runs `work` on a worker and waits for its result.
    ///
    /// Fails at once with [`Error::Overloaded`] when every worker is busy and the queue is full,
    /// or [`Error::ShuttingDown`] once the pool is closed. If the returned future is dropped
    /// before a worker picks the job up (the request timed out, the client left), the job is
    /// skipped.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce(&mut S) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let shared = Arc::clone(&self.shared);
        let job: Job<S> = Box::new(move |workspace: &mut S| {
            if tx.is_closed() {
                shared.finish(Duration::ZERO);
                return true;
            }
            let started = Instant::now();
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(workspace)));
            // Accounted before the result is sent: a client that has its response sees gauges
            // that no longer count its request.
            shared.finish(started.elapsed());
            match result {
                Ok(value) => {
                    // Err only means the caller stopped waiting.
                    let _ = tx.send(value);
                    true
                }
                Err(_) => false,
            }
        });
        self.shared.push(job)?;
        rx.await
            .map_err(|_| Error::Internal("the worker panicked while processing the request".into()))
    }
}

impl<S> WorkerPool<S> {
    /// Number of worker threads.
    pub fn workers(&self) -> NonZeroUsize {
        self.workers
    }

    /// Refuses new jobs; workers finish the queued ones, then exit.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.available.notify_all();
    }
}

impl<S> Drop for WorkerPool<S> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // No code panics while holding this lock (jobs run outside it).
        harness_core::sync::lock(&self.state)
    }

    fn push(&self, job: Job<S>) -> Result<(), Error> {
        let mut state = self.lock();
        if state.closed {
            return Err(Error::ShuttingDown);
        }
        // Counting running jobs rather than idle threads: a worker that is between two jobs
        // is free, and a request arriving in that instant must not be refused.
        if state.admitted >= self.admit_limit {
            return Err(Error::Overloaded);
        }
        state.admitted += 1;
        state.queue.push_back(job);
        self.metrics.queue_depth.set(state.queue.len() as i64);
        drop(state);
        self.available.notify_one();
        Ok(())
    }

    /// Blocks until a job is available; `None` once the pool is closed and drained.
    fn next_job(&self) -> Option<Job<S>> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                self.metrics.queue_depth.set(state.queue.len() as i64);
                self.metrics.in_flight.inc();
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self
                .available
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Ends a job that took `busy` of a worker's time.
    fn finish(&self, busy: Duration) {
        let mut state = self.lock();
        state.admitted -= 1;
        self.metrics.in_flight.dec();
        self.metrics.worker_busy_seconds.inc_by(busy.as_secs_f64());
    }
}

fn worker_loop<S: Default>(shared: &Shared<S>) {
    let mut workspace = S::default();
    while let Some(job) = shared.next_job() {
        if !job(&mut workspace) {
            tracing::error!("a job panicked; its worker starts over with a fresh workspace");
            workspace = S::default();
        }
    }
    // The last worker out leaves the gauge at zero.
    shared.metrics.workers.dec();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn pool(workers: usize, capacity: usize) -> (WorkerPool<u32>, Metrics) {
        let metrics = Metrics::new();
        let workers = NonZeroUsize::new(workers).unwrap();
        (
            WorkerPool::new(workers, capacity, metrics.clone()).unwrap(),
            metrics,
        )
    }

    /// Waits (in real time, briefly) until `cond` holds: workers are real threads.
    async fn eventually(cond: impl Fn() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("condition not reached in time");
    }

    #[tokio::test]
    async fn runs_jobs_with_a_reused_workspace() {
        let (pool, metrics) = pool(1, 0);
        for expected in 1..=3 {
            let seen = pool
                .run(|count: &mut u32| {
                    *count += 1;
                    *count
                })
                .await
                .unwrap();
            assert_eq!(seen, expected);
        }
        assert_eq!(metrics.workers.get(), 1);
        assert_eq!(metrics.in_flight.get(), 0);
        assert!(metrics.worker_busy_seconds.get() > 0.0);
    }

    #[tokio::test]
    async fn refuses_beyond_workers_plus_queue_and_counts_exactly() {
        let (pool, metrics) = pool(1, 1);
        let pool = Arc::new(pool);
        let (release, hold) = mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));

        let blocker = {
            let (pool, hold) = (Arc::clone(&pool), Arc::clone(&hold));
            tokio::spawn(async move {
                pool.run(move |_| hold.lock().unwrap().recv().unwrap())
                    .await
            })
        };
        eventually(|| metrics.in_flight.get() == 1).await;
        let queued = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(|_| 7).await })
        };
        eventually(|| metrics.queue_depth.get() == 1).await;

        let refused = pool.run(|_| 0).await;
        assert!(matches!(refused, Err(Error::Overloaded)), "{refused:?}");
        assert_eq!(metrics.in_flight.get(), 1);
        assert_eq!(metrics.queue_depth.get(), 1);

        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 7);
        assert_eq!(metrics.queue_depth.get(), 0);
        assert_eq!(metrics.in_flight.get(), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_request_but_not_the_worker() {
        let (pool, _) = pool(1, 0);
        pool.run(|count: &mut u32| *count = 41).await.unwrap();
        let err = pool.run(|_| -> u32 { panic!("boom") }).await.unwrap_err();
        assert_eq!(err.code(), "internal");
        // Same single worker, fresh workspace.
        assert_eq!(pool.run(|count: &mut u32| *count).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_closed_pool_refuses_and_its_workers_exit() {
        let (pool, metrics) = pool(2, 4);
        pool.close();
        assert!(matches!(pool.run(|_| ()).await, Err(Error::ShuttingDown)));
        eventually(|| metrics.workers.get() == 0).await;
    }
}
