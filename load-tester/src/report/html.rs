//! `report.html`: one self-contained page (inline CSS, no scripts, no network) showing the
//! stats table and the plots by relative path, so the folder can be opened, zipped or copied
//! anywhere.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::{PlotKind, ReportData};
use crate::stats::{LatencySummary, Stats};
use crate::target::TargetKind;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1240px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#555;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1.2rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:9rem}
.card .v{font-size:1.5rem;font-weight:600}.card .k{color:#555;font-size:.85rem}
.bad .v{color:#b3261e}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.3rem .7rem;text-align:right}
th:first-child,td:first-child{text-align:left}
thead th{background:#f3f3f3}
figure{margin:1.5rem 0}img{max-width:100%;border:1px solid #eee}
figcaption{color:#444;max-width:70rem}
.note{color:#555;font-size:.9rem}
";

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn card(out: &mut String, key: &str, value: &str, bad: bool) {
    let class = if bad { "card bad" } else { "card" };
    let _ = write!(
        out,
        "<div class=\"{class}\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
        escape(value),
        escape(key)
    );
}

fn latency_row(out: &mut String, name: &str, summary: Option<&LatencySummary>) {
    let _ = write!(out, "<tr><td>{}</td>", escape(name));
    match summary {
        Some(s) => {
            let _ = write!(out, "<td>{}</td>", s.count);
            for v in [s.min, s.mean, s.p50, s.p90, s.p95, s.p99, s.p999, s.max] {
                let _ = write!(out, "<td>{v:.2}</td>");
            }
        }
        None => out.push_str("<td>0</td><td colspan=\"8\">no samples</td>"),
    }
    out.push_str("</tr>\n");
}

/// The page for a report whose drawn plots are `plots`.
pub fn render(data: &ReportData, plots: &[PlotKind]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    header(&mut out, data);
    cards(&mut out, &data.stats);
    requests_table(&mut out, &data.stats);
    latency_table(&mut out, &data.stats);
    failures(&mut out, &data.stats);
    plot_figures(&mut out, plots);
    footer(&mut out, data);
    out
}

/// The document head, the title and the line describing the run.
fn header(out: &mut String, data: &ReportData) {
    let s = &data.stats;
    let started = humantime::format_rfc3339_seconds(
        UNIX_EPOCH + Duration::from_secs_f64(s.started_at_ms.max(0.0) / 1000.0),
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Load test {id}</title><style>{STYLE}</style></head><body>\n\
         <h1>Load test report</h1>\n<p class=\"meta\">Run <b>{id}</b> · started {started} · \
         {target} · {arrivals} arrivals · {secs} s workload · {images} image(s) · \
         phase: {phase:?}</p>\n",
        id = escape(&s.run_id),
        target = escape(&target_text(s)),
        arrivals = escape(s.arrivals.name()),
        secs = s.workload_seconds,
        images = data.images,
        phase = s.phase,
    );
}

/// `dispatcher <url>`, or the model server a direct run went to.
fn target_text(s: &Stats) -> String {
    let t = &s.target;
    match t.kind {
        // Reports written before `target` existed have an empty one.
        TargetKind::Dispatcher if t.url.is_empty() => format!("dispatcher {}", s.dispatcher_url),
        TargetKind::Dispatcher => format!("dispatcher {}", t.url),
        TargetKind::Infer => format!("inference {} (direct)", t.url),
        TargetKind::V2 => format!(
            "v2 model {} at {} (direct)",
            t.model_name.as_deref().unwrap_or("?"),
            t.url
        ),
    }
}

/// The headline numbers; failures and missing requests are marked when above zero.
fn cards(out: &mut String, s: &Stats) {
    out.push_str("<div class=\"cards\">");
    card(
        out,
        "requests expected",
        &s.total_requests.to_string(),
        false,
    );
    card(out, "succeeded", &s.succeeded.to_string(), false);
    let failures = s.rejected + s.send_errors + s.failed;
    card(
        out,
        "failed (all kinds)",
        &failures.to_string(),
        failures > 0,
    );
    card(out, "missing", &s.missing.to_string(), s.missing > 0);
    let throughput = format!("{:.1}/s", s.throughput_per_second);
    card(out, "throughput", &throughput, false);
    let p99 = s
        .latency_ms
        .map_or("–".to_owned(), |l| format!("{:.0} ms", l.p99));
    card(out, "p99 latency", &p99, false);
    out.push_str("</div>\n");
}

/// Every counter of the run, one row each.
fn requests_table(out: &mut String, s: &Stats) {
    out.push_str(
        "<h2>Requests</h2>\n<table><thead><tr><th>count</th><th>value</th></tr></thead><tbody>\n",
    );
    let missing_reasons: Vec<(String, String)> = s
        .missing_by_reason
        .iter()
        .filter(|&(_, &n)| n > 0)
        .map(|(reason, n)| (format!("\u{a0}\u{a0}missing: {reason}"), n.to_string()))
        .collect();
    let rows_before_missing = [
        ("planned by the schedule", s.planned.to_string()),
        ("expected (totalRequests)", s.total_requests.to_string()),
        ("sent", s.sent.to_string()),
        ("accepted by /enqueue", s.accepted.to_string()),
        ("rejected by /enqueue", s.rejected.to_string()),
        ("send errors (no answer)", s.send_errors.to_string()),
        ("completed (record received)", s.completed.to_string()),
        ("succeeded", s.succeeded.to_string()),
        ("failed (outcome not ok)", s.failed.to_string()),
        ("missing (no outcome known)", s.missing.to_string()),
    ];
    let rows_after_missing = [
        ("duplicate records", s.duplicates.to_string()),
        ("unmatched records", s.unmatched.to_string()),
        (
            "records came by",
            format!(
                "{} (pulled {}, pushed {}, again {})",
                s.delivery.paths(),
                s.delivery.pulled,
                s.delivery.pushed,
                s.delivery.redelivered
            ),
        ),
        (
            "records the dispatcher dropped",
            s.delivery.dispatcher_dropped.total().to_string(),
        ),
        (
            "sends that waited for the concurrency cap",
            s.concurrency_cap_hits.to_string(),
        ),
        ("duration (s)", format!("{:.1}", s.duration_seconds)),
        (
            "throughput (succeeded/s)",
            format!("{:.2}", s.throughput_per_second),
        ),
    ];
    let rows = rows_before_missing
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .chain(missing_reasons)
        .chain(
            rows_after_missing
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
    for (name, value) in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&name),
            escape(&value)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// The five latency distributions, and why they can be trusted.
fn latency_table(out: &mut String, s: &Stats) {
    out.push_str(
        "<h2>Latency (ms)</h2>\n<table><thead><tr><th>distribution</th><th>count</th>\
         <th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th>\
         <th>p99.9</th><th>max</th></tr></thead><tbody>\n",
    );
    for (name, summary) in [
        ("end-to-end (queue wait + inference)", &s.latency_ms),
        ("queue wait", &s.queue_wait_ms),
        ("inference (incl. retries)", &s.inference_ms),
        ("enqueue (client, from intended send)", &s.enqueue_ms),
        ("schedule lag (generator)", &s.schedule_lag_ms),
    ] {
        latency_row(out, name, summary.as_ref());
    }
    out.push_str(
        "</tbody></table>\n<p class=\"note\">Percentiles come from HDR histograms with 3 \
         significant digits. Enqueue times are measured from the <em>intended</em> send time, \
         so a late generator cannot hide latency (coordinated omission).</p>\n",
    );
}

/// Failures by code and the first missing ids, when there are any.
fn failures(out: &mut String, s: &Stats) {
    if !s.failures_by_code.is_empty() {
        out.push_str("<h2>Failures by code</h2>\n<table><thead><tr><th>code</th><th>requests</th></tr></thead><tbody>\n");
        for (code, n) in &s.failures_by_code {
            let _ = writeln!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(code));
        }
        out.push_str("</tbody></table>\n");
    }
    let dropped = s.delivery.dispatcher_dropped;
    if dropped.total() > 0 {
        let reasons: Vec<String> = dropped
            .by_reason()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| format!("{n} {}", reason.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "<p class=\"note\">The dispatcher dropped records of this run before they were \
             collected ({}); their requests are among the missing.</p>",
            escape(&reasons.join(", "))
        );
    }
    if !s.missing_ids_sample.is_empty() {
        let ids: Vec<String> = s.missing_ids_sample.iter().map(|i| escape(i)).collect();
        let _ = writeln!(
            out,
            "<p class=\"note\">First missing request ids: <code>{}</code></p>",
            ids.join(", ")
        );
    }
}

/// The drawn plots, then a note for each plot that had no data.
fn plot_figures(out: &mut String, plots: &[PlotKind]) {
    out.push_str("<h2>Plots</h2>\n");
    for plot in plots {
        let _ = writeln!(
            out,
            "<figure><img src=\"{file}\" alt=\"{title}\" width=\"{w}\" height=\"{h}\">\
             <figcaption><b>{title}.</b> {caption}</figcaption></figure>",
            file = escape(plot.file()),
            title = escape(plot.title()),
            caption = escape(plot.caption()),
            w = super::plots::SIZE.0,
            h = super::plots::SIZE.1,
        );
    }
    for plot in PlotKind::ALL.iter().filter(|p| !plots.contains(p)) {
        let _ = writeln!(
            out,
            "<p class=\"note\">No data for “{}”{}.</p>",
            escape(plot.title()),
            match plot {
                PlotKind::QueueAndReplicas => {
                    ": the dispatcher's /stats was not reachable during the run"
                }
                _ => "",
            }
        );
    }
}

/// Links to the raw numbers, and the end of the page.
fn footer(out: &mut String, data: &ReportData) {
    let _ = writeln!(
        out,
        "<p class=\"note\">Raw numbers: <a href=\"{}\">stats.json</a>, per second \
         <a href=\"{}\">timeline.csv</a>. Concurrency cap {}.</p></body></html>",
        super::STATS_JSON,
        super::TIMELINE_CSV,
        data.concurrency
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
