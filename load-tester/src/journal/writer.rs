//! The journal's writer: a dedicated thread behind a bounded queue, writing through a
//! `BufWriter` flushed every [`FLUSH_EVERY`], on request ([`Journal::sync`]) and at the end.
//!
//! Callers never wait for the disk: the send path, the pacer and the record intake hand a line
//! over without waiting. When the queue is full (the disk stalled for a long while) the line is
//! dropped and counted, in the run's `journal.droppedLines`, a `lost` line and
//! `loadtest_journal_lines_dropped_total`: the open loop must not slow down for its own
//! bookkeeping, and the report must say that its rebuild would be incomplete. A flush hands the
//! lines to the operating system, which keeps them across a `kill -9` of this process.
//!
//! Records are the one thing the dispatcher forgets once collected, so the two intakes call
//! [`Journal::sync`] before they acknowledge a batch (the pull path's next poll, the push path's
//! answer): a record the dispatcher considers delivered is in the journal's file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness_core::sync::lock;
use prometheus::IntCounter;
use tokio::sync::oneshot;

use super::read::ReadSummary;
use super::{Header, JOURNAL_FILE, JournalError, JournalStats, Line, MAX_INSTANCES};
use crate::metrics::Metrics;

/// Lines waiting for the writer thread at most. The queue's memory follows what is queued (a
/// channel that grows in small blocks, bounded by a count), so an idle queue costs nothing; a
/// channel with preallocated slots would hold this many lines' worth (about 8 MiB) all run long.
pub const QUEUE_LINES: usize = 65_536;
/// The longest a written line stays in the process's buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
const BUFFER_BYTES: usize = 64 * 1024;

enum Message {
    Line(Line),
    /// Answered once every earlier line is written to the file.
    Sync(oneshot::Sender<()>),
    /// Writes the line (if any), flushes, answers and stops the thread.
    Close(Option<Line>, oneshot::Sender<()>),
}

/// A handle on a run's journal; cheap to clone. [`Journal::disabled`] writes nothing.
#[derive(Clone, Default)]
pub struct Journal {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shared {
            Some(shared) => write!(f, "Journal({})", shared.path.display()),
            None => f.write_str("Journal(disabled)"),
        }
    }
}

struct Shared {
    tx: Sender<Message>,
    /// Lines the queue may hold ([`QUEUE_LINES`]; tests use fewer).
    capacity: usize,
    path: PathBuf,
    counters: Arc<Counters>,
    dropped_metric: IntCounter,
    rebuilt: bool,
    torn_line_ignored: bool,
    /// The dispatcher instance ids numbered so far (`inst` lines); at most [`MAX_INSTANCES`].
    instances: Mutex<Vec<String>>,
}

#[derive(Default)]
struct Counters {
    lines: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
    ended: AtomicBool,
    /// Lines handed over and not yet taken by the writer thread.
    queued: AtomicUsize,
}

impl Counters {
    /// Counting on from what a read found.
    fn of_read(read: &ReadSummary) -> Self {
        Self {
            lines: AtomicU64::new(read.lines),
            bytes: AtomicU64::new(read.bytes),
            dropped: AtomicU64::new(read.lost),
            ended: AtomicBool::new(read.ended.is_some()),
            queued: AtomicUsize::new(0),
        }
    }
}

impl Journal {
    /// A journal that writes nothing (runs built by hand, benchmarks).
    pub fn disabled() -> Self {
        Self { shared: None }
    }

    /// Creates `<dir>/journal.jsonl` with `header` as its first line, written to the file
    /// before this returns, and starts the writer thread.
    pub fn create(dir: &Path, header: &Header, metrics: &Metrics) -> Result<Self, JournalError> {
        Self::create_with_queue(dir, header, metrics, QUEUE_LINES)
    }

    /// [`Journal::create`] with a queue of `queue` lines (tests fill a small one).
    pub(crate) fn create_with_queue(
        dir: &Path,
        header: &Header,
        metrics: &Metrics,
        queue: usize,
    ) -> Result<Self, JournalError> {
        let path = dir.join(JOURNAL_FILE);
        let create = |source| JournalError::Create {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(create)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(create)?;
        let counters = Arc::new(Counters::default());
        let mut writer = Writer::new(file, &path, counters.clone(), metrics);
        writer.write(&Line::Run(Box::new(header.clone())));
        writer.flush();
        if writer.failed {
            return Err(create(std::io::Error::other("cannot write the header")));
        }
        Self::start(
            writer,
            path,
            counters,
            metrics,
            (queue, false, false),
            Vec::new(),
        )
    }

    /// Reopens a journal read by a rebuild, to append the records collected after the crash:
    /// cuts a torn last line first (so the next line starts a line of its own) and counts on
    /// from what the read found.
    pub fn append(
        path: &Path,
        read: &ReadSummary,
        metrics: &Metrics,
    ) -> Result<Self, JournalError> {
        let open = |source| JournalError::Create {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new().append(true).open(path).map_err(open)?;
        if read.torn_bytes > 0 {
            file.set_len(read.bytes).map_err(open)?;
        }
        let counters = Arc::new(Counters::of_read(read));
        let writer = Writer::new(file, path, counters.clone(), metrics);
        let flags = (QUEUE_LINES, true, read.torn_bytes > 0);
        let instances = read.instances.clone();
        Self::start(writer, path.to_owned(), counters, metrics, flags, instances)
    }

    /// A journal read by a rebuild that appends nothing (no records to collect): it only
    /// reports what the read found.
    pub fn read_only(path: &Path, read: &ReadSummary, metrics: &Metrics) -> Self {
        // A queue whose receiver is gone: every line and control returns at once.
        let (tx, _) = channel();
        Self {
            shared: Some(Arc::new(Shared {
                tx,
                capacity: 0,
                path: path.to_owned(),
                counters: Arc::new(Counters::of_read(read)),
                dropped_metric: metrics.journal_lines_dropped.clone(),
                rebuilt: true,
                torn_line_ignored: read.torn_bytes > 0,
                instances: Mutex::new(read.instances.clone()),
            })),
        }
    }

    /// Starts the writer thread; `(queue, rebuilt, torn_line_ignored)`, and the instance ids
    /// numbered already.
    fn start(
        mut writer: Writer,
        path: PathBuf,
        counters: Arc<Counters>,
        metrics: &Metrics,
        (queue, rebuilt, torn_line_ignored): (usize, bool, bool),
        instances: Vec<String>,
    ) -> Result<Self, JournalError> {
        let (tx, rx) = channel();
        writer.lost_written = counters.dropped.load(Ordering::Relaxed);
        std::thread::Builder::new()
            .name("loadtest-journal".into())
            .spawn(move || writer.run(&rx))
            .map_err(JournalError::Thread)?;
        Ok(Self {
            shared: Some(Arc::new(Shared {
                tx,
                capacity: queue,
                path,
                counters,
                dropped_metric: metrics.journal_lines_dropped.clone(),
                rebuilt,
                torn_line_ignored,
                instances: Mutex::new(instances),
            })),
        })
    }

    /// The journal's number for dispatcher instance `id`, writing its `inst` line when the id
    /// is new (`observed`: seen in a `/stats` answer or a records page, not an `/enqueue`
    /// answer). `Some(0)` past [`MAX_INSTANCES`] ids; `None` for a disabled journal. Call with
    /// the run's ledger locked, so that the lines keep the order of the ledger's events.
    pub fn instance(&self, id: &str, observed: bool) -> Option<u32> {
        let shared = self.shared.as_ref()?;
        let mut known = lock(&shared.instances);
        if let Some(p) = known.iter().position(|k| k == id) {
            return Some(p as u32 + 1);
        }
        if known.len() >= MAX_INSTANCES {
            return Some(0);
        }
        let n = known.len() as u32 + 1;
        let line = Line::Instance {
            n,
            id: id.to_owned(),
            obs: observed,
        };
        // A number whose line was dropped would make the later lines unreadable: the id is
        // numbered only once its line is queued (until then its `enq` lines say 0).
        if !self.try_write(line) {
            return Some(0);
        }
        known.push(id.to_owned());
        Some(n)
    }

    /// Hands a line to the writer without waiting; a full queue drops and counts it.
    pub fn write(&self, line: Line) {
        self.try_write(line);
    }

    /// [`Journal::write`], saying whether the line was queued.
    fn try_write(&self, line: Line) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let queued = &shared.counters.queued;
        if queued.fetch_add(1, Ordering::Relaxed) >= shared.capacity {
            queued.fetch_sub(1, Ordering::Relaxed);
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            shared.dropped_metric.inc();
            return false;
        }
        if shared.tx.send(Message::Line(line)).is_err() {
            // Closed: the run has ended and the journal with it; later events (a record
            // pushed after the run) are in the ledger only.
            queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Returns once every line handed over before is in the file (or the journal is closed).
    pub async fn sync(&self) {
        self.control(Message::Sync).await;
    }

    /// Writes the end marker, flushes and stops the writer: the run ended.
    pub async fn end(&self, interrupted: bool) {
        self.control(|done| Message::Close(Some(Line::End { interrupted }), done))
            .await;
    }

    /// Flushes and stops the writer without an end marker (a rebuild's appended records).
    pub async fn close(&self) {
        self.control(|done| Message::Close(None, done)).await;
    }

    async fn control(&self, message: impl FnOnce(oneshot::Sender<()>) -> Message) {
        let Some(shared) = &self.shared else { return };
        let (done, written) = oneshot::channel();
        // Controls are not bounded by the line count: they are few, and they must not be lost.
        if shared.tx.send(message(done)).is_ok() {
            let _ = written.await;
        }
    }

    /// What has been written so far; `None` for a disabled journal. `sent` gives the
    /// bytes per request.
    pub fn stats(&self, sent: u64) -> Option<JournalStats> {
        let shared = self.shared.as_ref()?;
        let c = &shared.counters;
        let bytes = c.bytes.load(Ordering::Relaxed);
        Some(JournalStats {
            file: JOURNAL_FILE.to_owned(),
            lines: c.lines.load(Ordering::Relaxed),
            bytes,
            bytes_per_request: if sent > 0 {
                (bytes as f64 / sent as f64 * 10.0).round() / 10.0
            } else {
                0.0
            },
            dropped_lines: c.dropped.load(Ordering::Relaxed),
            ended: c.ended.load(Ordering::Relaxed),
            rebuilt: shared.rebuilt,
            torn_line_ignored: shared.torn_line_ignored,
        })
    }
}

/// The writer thread's state.
struct Writer {
    out: BufWriter<File>,
    path: PathBuf,
    line: Vec<u8>,
    counters: Arc<Counters>,
    bytes_metric: IntCounter,
    dropped_metric: IntCounter,
    /// The `dropped` count the last `lost` line said.
    lost_written: u64,
    /// A write failed (disk full, I/O error): every later line is dropped and counted.
    failed: bool,
}

impl Writer {
    fn new(file: File, path: &Path, counters: Arc<Counters>, metrics: &Metrics) -> Self {
        Self {
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            path: path.to_owned(),
            line: Vec::with_capacity(256),
            counters,
            bytes_metric: metrics.journal_bytes.clone(),
            dropped_metric: metrics.journal_lines_dropped.clone(),
            lost_written: 0,
            failed: false,
        }
    }

    fn run(mut self, rx: &Receiver<Message>) {
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        loop {
            match rx.recv_timeout(next_flush.saturating_duration_since(Instant::now())) {
                Ok(Message::Line(line)) => {
                    self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    self.write(&line);
                }
                Ok(Message::Sync(done)) => {
                    self.flush();
                    let _ = done.send(());
                }
                Ok(Message::Close(line, done)) => {
                    self.note_lost();
                    if let Some(line) = line {
                        self.write(&line);
                        self.counters.ended.store(true, Ordering::Relaxed);
                    }
                    self.flush();
                    let _ = done.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.note_lost();
                    self.flush();
                    return;
                }
            }
            if Instant::now() >= next_flush {
                self.note_lost();
                self.flush();
                next_flush = Instant::now() + FLUSH_EVERY;
            }
        }
    }

    fn write(&mut self, line: &Line) {
        if self.failed {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.dropped_metric.inc();
            return;
        }
        self.line.clear();
        if let Err(err) = serde_json::to_writer(&mut self.line, line) {
            // Every line type serialises; this would be a bug, and it is counted, not hidden.
            tracing::error!(%err, "cannot serialise a journal line");
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.line.push(b'\n');
        match self.out.write_all(&self.line) {
            Ok(()) => {
                let len = self.line.len() as u64;
                self.counters.lines.fetch_add(1, Ordering::Relaxed);
                self.counters.bytes.fetch_add(len, Ordering::Relaxed);
                self.bytes_metric.inc_by(len);
            }
            Err(err) => self.fail(&err),
        }
    }

    /// Writes a `lost` line when lines were dropped since the last one.
    fn note_lost(&mut self) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.lost_written && !self.failed {
            tracing::warn!(
                file = %self.path.display(),
                dropped,
                "the journal writer fell behind and dropped lines; a rebuild from this journal \
                 would miss them"
            );
            self.lost_written = dropped;
            self.write(&Line::Lost { lines: dropped });
        }
    }

    fn flush(&mut self) {
        if !self.failed
            && let Err(err) = self.out.flush()
        {
            self.fail(&err);
        }
    }

    fn fail(&mut self, err: &std::io::Error) {
        tracing::error!(file = %self.path.display(), %err, "cannot write the run journal; \
                        later lines are dropped and counted");
        self.failed = true;
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        self.dropped_metric.inc();
    }
}
