//! Reports: one folder per run holding `stats.json`, `timeline.csv` (one row per second), the
//! PNG plots and a self-contained `report.html` that shows them and opens straight from disk.
//!
//! - [`plots`]: the four PNG plots (plotters, embedded font).
//! - [`html`]: the page, `report.html`.

pub mod html;
pub mod plots;

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::error::Error;
use crate::ledger::SecondBin;
use crate::sampler::Timeline;
use crate::stats::Stats;
use crate::store::{RunState, lock};

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

/// One plot of a report, as `report.html` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plot {
    pub file: &'static str,
    pub title: &'static str,
    pub caption: &'static str,
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
) -> Result<(Stats, ReportFiles), Error> {
    let data = ReportData::snapshot(run, total_requests);
    let dir = reports_dir.join(&data.stats.run_id);
    let rendered = tokio::task::spawn_blocking(move || {
        let files = write_blocking(&data, &dir)?;
        Ok::<_, Error>((data.stats, files))
    })
    .await;
    match rendered {
        Ok(result) => result,
        Err(join) => Err(Error::Report(format!("rendering panicked: {join}"))),
    }
}

/// Writes a report folder from a snapshot. Blocking and CPU-bound.
pub fn write_blocking(data: &ReportData, dir: &Path) -> Result<ReportFiles, Error> {
    let io = |what: &str, e: std::io::Error| Error::Report(format!("{what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io(&format!("cannot create {}", dir.display()), e))?;

    let stats_json = dir.join(STATS_JSON);
    let json = serde_json::to_vec_pretty(&data.stats)
        .map_err(|e| Error::Report(format!("cannot serialise stats: {e}")))?;
    std::fs::write(&stats_json, json).map_err(|e| io("cannot write stats.json", e))?;
    let timeline_csv = dir.join(TIMELINE_CSV);
    std::fs::write(&timeline_csv, timeline_csv_text(&data.rates, &data.seconds))
        .map_err(|e| io("cannot write timeline.csv", e))?;

    let mut shown = Vec::new();
    let mut paths = Vec::new();
    for plot in PLOTS.iter() {
        let path = dir.join(plot.file);
        let drawn = match plot.file {
            LATENCY_OVER_TIME => plots::latency_over_time(&path, &data.seconds),
            LATENCY_DISTRIBUTION => plots::latency_distribution(&path, &data.latency),
            THROUGHPUT => plots::throughput(&path, &data.rates, &data.seconds),
            QUEUE_AND_REPLICAS => plots::queue_and_replicas(&path, &data.timeline),
            _ => Ok(false),
        }
        .map_err(|e| Error::Report(format!("cannot draw {}: {e}", plot.file)))?;
        if drawn {
            shown.push(plot);
            paths.push(path);
        } else {
            // A stale plot from an earlier report of this run would contradict the new one.
            let _ = std::fs::remove_file(&path);
        }
    }

    let html_path = dir.join(REPORT_HTML);
    std::fs::write(&html_path, html::render(data, &shown))
        .map_err(|e| io("cannot write report.html", e))?;
    Ok(ReportFiles {
        dir: dir.to_owned(),
        html: html_path,
        stats_json,
        timeline_csv,
        plots: paths,
    })
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
            match bin.latency.as_ref().filter(|h| !h.is_empty()) {
                Some(h) => {
                    let _ = write!(out, ",{:.3}", h.value_at_quantile(q) as f64 / 1000.0);
                }
                None => out.push(','),
            }
        }
        out.push('\n');
    }
    out
}

const LATENCY_OVER_TIME: &str = "latency_over_time.png";
const LATENCY_DISTRIBUTION: &str = "latency_distribution.png";
const THROUGHPUT: &str = "throughput.png";
const QUEUE_AND_REPLICAS: &str = "queue_replicas.png";

/// The plots, in the order the report shows them.
pub static PLOTS: [Plot; 4] = [
    Plot {
        file: THROUGHPUT,
        title: "Offered vs completed load",
        caption: "Grey: the workload (requests per second asked for). Blue: requests sent in \
                  each second. Green: successful completions per second, by completion time, \
                  so a backlog shows as green trailing grey. Red: rejections, send errors and \
                  failed outcomes.",
    },
    Plot {
        file: LATENCY_OVER_TIME,
        title: "Latency over time",
        caption: "p50, p95 and p99 of the dispatcher-reported latency (queue wait + inference) \
                  of the successful requests sent in each second.",
    },
    Plot {
        file: LATENCY_DISTRIBUTION,
        title: "Latency distribution",
        caption: "Left: how many requests took how long, up to p99.9. Right: the cumulative \
                  distribution over the whole range, with p50, p90 and p99 marked.",
    },
    Plot {
        file: QUEUE_AND_REPLICAS,
        title: "Queue and replicas",
        caption: "Sampled once per interval during the run: the dispatcher's queue length \
                  (left axis) and the ready inference replicas (right axis), plus any extra \
                  series configured. Gaps are samples that failed.",
    },
];
