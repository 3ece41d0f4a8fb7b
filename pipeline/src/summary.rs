//! The text printed at the end of a demo: the load tester's table, then what the autoscaler
//! did to the pool, and where the report is.

use std::fmt::Write as _;

use crate::demo::DemoOutcome;

/// The whole summary, ready to print.
pub fn render(outcome: &DemoOutcome) -> String {
    let mut out = load_tester::run_command::summary(&outcome.load);
    let s = &outcome.load.stats;
    if let Some(l) = &s.latency_ms {
        let _ = writeln!(
            out,
            "latency p50 {:.0} ms · p95 {:.0} ms · p99 {:.0} ms (from the intended send time)",
            l.p50, l.p95, l.p99
        );
    }
    let (lo, hi) = outcome.replica_range;
    let _ = writeln!(
        out,
        "replicas {lo}..={hi} · {} scale event(s){}",
        outcome.scale_events.len(),
        events_line(outcome)
    );
    if let Some(first) = outcome.cold_starts.first() {
        let longest = outcome.cold_starts.iter().max().unwrap_or(first);
        let _ = writeln!(
            out,
            "replica cold start (model load and warm-up): first {:.1} s, longest {:.1} s, {} replica(s){}",
            first.as_secs_f64(),
            longest.as_secs_f64(),
            outcome.cold_starts.len(),
            if lo == 0 {
                " · from zero replicas: the first requests waited the cold start in the queue (queueWaitMs)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "demo took {:.0} s{}",
        outcome.elapsed.as_secs_f64(),
        if outcome.interrupted() {
            " (interrupted: the report holds what was collected)"
        } else {
            ""
        }
    );
    out
}

/// `: 1→2 at 21 s, 2→3 at 27 s, ...` (the first dozen), in seconds since the test start as
/// in the report's plots.
fn events_line(outcome: &DemoOutcome) -> String {
    const SHOWN: usize = 12;
    let events = &outcome.scale_events;
    if events.is_empty() {
        return String::new();
    }
    let mut line = String::from(":");
    for (i, e) in events.iter().take(SHOWN).enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        let at = (e.at_unix_ms - outcome.load.stats.started_at_ms) / 1e3;
        let _ = write!(line, "{sep}{}→{} at {at:.0} s", e.from, e.to);
    }
    if events.len() > SHOWN {
        let _ = write!(line, ", … ({} more)", events.len() - SHOWN);
    }
    line
}
