//! Reports: one folder per run holding `stats.json`, `timeline.csv` (one row per second), the
//! PNG plots and a self-contained `report.html` that shows them and opens straight from disk.
//!
//! - [`plots`]: the four PNG plots (plotters, embedded font).
//! - [`html`]: the page, `report.html`.

pub mod html;
pub mod plots;

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use harness_core::sync::lock;

use crate::ledger::SecondBin;
use crate::sampler::Timeline;
use crate::stats::Stats;
use crate::store::RunState;

/// File names inside a report folder.
pub const STATS_JSON: &str = "stats.json";
pub const REPORT_HTML: &str = "report.html";
pub const TIMELINE_CSV: &str = "timeline.csv";

/// The files of a written report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub dir: PathBuf,
    pub html: PathBuf,
    pub stats_json: PathBuf,
    /// One row per second: offered, sent and outcomes, latency percentiles.
    pub timeline_csv: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// Why a report could not be written. The causes stay attached; the messages are those the
/// HTTP API has always shown after `cannot write the report: `.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {file}: {source}")]
    Write {
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise stats: {0}")]
    Serialise(#[source] serde_json::Error),
    #[error("cannot draw {}: {source}", plot.file())]
    Draw {
        plot: PlotKind,
        #[source]
        source: plots::PlotError,
    },
    #[error("rendering panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
}

/// Everything a report needs, copied out of a run so that rendering holds no lock.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub stats: Stats,
    pub rates: Vec<u32>,
    pub seconds: Vec<SecondBin>,
    pub latency: Histogram<u64>,
    pub timeline: Timeline,
    pub images: usize,
    pub concurrency: usize,
}

impl ReportData {
    /// A snapshot of a run; `total_requests` is what the user expected (default: sent).
    pub fn snapshot(run: &RunState, total_requests: Option<u64>) -> Self {
        let stats = Stats::of_run(run, total_requests);
        let ledger = lock(&run.ledger);
        Self {
            stats,
            rates: ledger.plan().rates().to_vec(),
            seconds: ledger.seconds().to_vec(),
            latency: ledger.histograms().latency.clone(),
            timeline: lock(&run.timeline).clone(),
            images: run.info.images,
            concurrency: run.info.concurrency,
        }
    }
}

/// Writes the report of a run into `<reports_dir>/<runId>/` (replacing an earlier report of
/// the same run) and returns its stats and files. Rendering runs on the blocking pool.
pub async fn write_report(
    run: &RunState,
    total_requests: Option<u64>,
    reports_dir: &Path,
) -> Result<(Stats, ReportFiles), ReportError> {
    let data = ReportData::snapshot(run, total_requests);
    let dir = reports_dir.join(&data.stats.run_id);
    let rendered = tokio::task::spawn_blocking(move || {
        let files = write_blocking(&data, &dir)?;
        Ok::<_, ReportError>((data.stats, files))
    })
    .await;
    rendered.map_err(ReportError::Panicked)?
}

/// Writes a report folder from a snapshot. Blocking and CPU-bound.
pub fn write_blocking(data: &ReportData, dir: &Path) -> Result<ReportFiles, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        dir: dir.to_owned(),
        source,
    })?;
    let write = |file: &'static str, contents: &[u8]| {
        let path = dir.join(file);
        std::fs::write(&path, contents)
            .map(|()| path)
            .map_err(|source| ReportError::Write { file, source })
    };
    let json = serde_json::to_vec_pretty(&data.stats).map_err(ReportError::Serialise)?;
    let stats_json = write(STATS_JSON, &json)?;
    let csv = timeline_csv_text(&data.rates, &data.seconds);
    let timeline_csv = write(TIMELINE_CSV, csv.as_bytes())?;
    let (shown, paths) = draw_plots(data, dir)?;
    let html = write(REPORT_HTML, html::render(data, &shown).as_bytes())?;
    Ok(ReportFiles {
        dir: dir.to_owned(),
        html,
        stats_json,
        timeline_csv,
        plots: paths,
    })
}

/// Draws every plot that has data; returns the kinds drawn and their paths.
fn draw_plots(data: &ReportData, dir: &Path) -> Result<(Vec<PlotKind>, Vec<PathBuf>), ReportError> {
    let mut shown = Vec::new();
    let mut paths = Vec::new();
    for plot in PlotKind::ALL {
        let path = dir.join(plot.file());
        let drawn = match plot {
            PlotKind::LatencyOverTime => plots::latency_over_time(&path, &data.seconds),
            PlotKind::LatencyDistribution => plots::latency_distribution(&path, &data.latency),
            PlotKind::Throughput => plots::throughput(&path, &data.rates, &data.seconds),
            PlotKind::QueueAndReplicas => plots::queue_and_replicas(&path, &data.timeline),
        }
        .map_err(|source| ReportError::Draw { plot, source })?;
        if drawn {
            shown.push(plot);
            paths.push(path);
        } else {
            // A stale plot from an earlier report of this run would contradict the new one.
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok((shown, paths))
}

/// `timeline.csv`: per second of the run, what the workload offered, what was sent, the
/// outcomes, and the latency percentiles (ms) of the successful requests sent in that second
/// (empty when none). Seconds after the schedule (the drain) have an offered rate of 0.
pub fn timeline_csv_text(rates: &[u32], seconds: &[SecondBin]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "second,offered,sent,rejected,send_errors,succeeded,failed,latency_p50_ms,latency_p95_ms,latency_p99_ms\n",
    );
    let empty = SecondBin::default();
    for i in 0..rates.len().max(seconds.len()) {
        let bin = seconds.get(i).unwrap_or(&empty);
        let offered = rates.get(i).copied().unwrap_or(0);
        let _ = write!(
            out,
            "{i},{offered},{},{},{},{},{}",
            bin.sent, bin.rejected, bin.send_errors, bin.succeeded, bin.failed
        );
        for q in [0.5, 0.95, 0.99] {
            match bin.latency.value_at_quantile(q) {
                Some(us) => {
                    let _ = write!(out, ",{:.3}", us as f64 / 1000.0);
                }
                None => out.push(','),
            }
        }
        out.push('\n');
    }
    out
}

/// The plots of a report, each with its file, title and caption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotKind {
    Throughput,
    LatencyOverTime,
    LatencyDistribution,
    QueueAndReplicas,
}

impl PlotKind {
    /// Every plot, in the order the report shows them.
    pub const ALL: [PlotKind; 4] = [
        PlotKind::Throughput,
        PlotKind::LatencyOverTime,
        PlotKind::LatencyDistribution,
        PlotKind::QueueAndReplicas,
    ];

    /// File name inside the report folder.
    pub fn file(self) -> &'static str {
        match self {
            PlotKind::Throughput => "throughput.png",
            PlotKind::LatencyOverTime => "latency_over_time.png",
            PlotKind::LatencyDistribution => "latency_distribution.png",
            PlotKind::QueueAndReplicas => "queue_replicas.png",
        }
    }

    /// Heading of the figure in `report.html`.
    pub fn title(self) -> &'static str {
        match self {
            PlotKind::Throughput => "Offered vs completed load",
            PlotKind::LatencyOverTime => "Latency over time",
            PlotKind::LatencyDistribution => "Latency distribution",
            PlotKind::QueueAndReplicas => "Queue and replicas",
        }
    }

    /// What the plot shows, under it in `report.html`.
    pub fn caption(self) -> &'static str {
        match self {
            PlotKind::Throughput => {
                "Grey: the workload (requests per second asked for). Blue: requests sent in \
                 each second. Green: successful completions per second, by completion time, \
                 so a backlog shows as green trailing grey. Red: rejections, send errors and \
                 failed outcomes."
            }
            PlotKind::LatencyOverTime => {
                "p50, p95 and p99 of the dispatcher-reported latency (queue wait + inference) \
                 of the successful requests sent in each second."
            }
            PlotKind::LatencyDistribution => {
                "Left: how many requests took how long, up to p99.9. Right: the cumulative \
                 distribution over the whole range, with p50, p90 and p99 marked."
            }
            PlotKind::QueueAndReplicas => {
                "Sampled once per interval during the run: the dispatcher's queue length \
                 (left axis) and the ready inference replicas (right axis), plus any extra \
                 series configured. Gaps are samples that failed."
            }
        }
    }
}
