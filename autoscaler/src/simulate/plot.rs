//! The simulation as a picture: load, replicas per policy and p95 latency per policy over
//! time, stacked, in one PNG, in the project's shared look ([`harness_core::plot`]: embedded
//! font, colour-blind-safe palette).

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use harness_core::plot::{self, FAMILY, PALETTE as COLORS};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::engine::RunResult;
use super::workload::Workload;

/// Draws `results` over `workload` to a PNG at `path`, with `sla_latency` as the reference
/// line of the latency panel.
pub fn draw(
    path: &Path,
    workload: &Workload,
    results: &[RunResult],
    sla_latency: Duration,
) -> anyhow::Result<()> {
    plot::register()?;
    let axis = TimeAxis::for_seconds(workload.seconds() as f64);
    let root = BitMapBackend::new(path, (1400, 1050)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let panels = root.split_evenly((3, 1));
    draw_load(&panels[0], &axis, workload, results)?;
    draw_replicas(&panels[1], &axis, results)?;
    draw_latency(&panels[2], &axis, results, sla_latency)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The shared x axis: hours for traces over three hours, else minutes.
struct TimeAxis {
    /// Length of the workload, in seconds.
    seconds: f64,
    /// Seconds per axis unit.
    unit: f64,
    unit_name: &'static str,
    /// Right end of the axis, in units.
    max: f64,
}

impl TimeAxis {
    fn for_seconds(seconds: f64) -> Self {
        let (unit, unit_name) = if seconds > 3.0 * 3600.0 {
            (3600.0, "hours")
        } else {
            (60.0, "minutes")
        };
        Self {
            seconds,
            unit,
            unit_name,
            max: seconds / unit,
        }
    }
}

/// Top panel: the arrival rate, averaged per bucket.
fn draw_load(
    panel: &Panel<'_>,
    axis: &TimeAxis,
    workload: &Workload,
    results: &[RunResult],
) -> anyhow::Result<()> {
    let unit = axis.unit;
    let bucket = results.first().map_or(60.0, |r| r.bucket_seconds).max(1.0) as usize;
    let load: Vec<(f64, f64)> = workload
        .rates()
        .chunks(bucket)
        .enumerate()
        .map(|(i, c)| {
            (
                (i * bucket) as f64 / unit,
                c.iter().sum::<f64>() / c.len() as f64,
            )
        })
        .collect();
    let load_max = load.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(panel)
        .caption("Arrival rate (requests/s)", (FAMILY, 22))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..axis.max, 0.0..load_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(axis.unit_name)
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(AreaSeries::new(load, 0.0, COLORS[0].mix(0.3)).border_style(COLORS[0]))
        .map_err(plot_error)?;
    Ok(())
}

/// Middle panel: replicas, a step line per policy, with a legend.
fn draw_replicas(panel: &Panel<'_>, axis: &TimeAxis, results: &[RunResult]) -> anyhow::Result<()> {
    let unit = axis.unit;
    let peak = results
        .iter()
        .map(|r| r.peak_replicas)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut chart = ChartBuilder::on(panel)
        .caption("Replicas", (FAMILY, 22))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..axis.max, 0.0..f64::from(peak) * 1.15)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(axis.unit_name)
        .draw()
        .map_err(plot_error)?;
    for (i, r) in results.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut steps = Vec::with_capacity(r.replicas.len() * 2 + 1);
        for (j, &(t, n)) in r.replicas.iter().enumerate() {
            let until = r.replicas.get(j + 1).map_or(axis.seconds, |next| next.0);
            steps.push((t / unit, f64::from(n)));
            steps.push((until / unit, f64::from(n)));
        }
        chart
            .draw_series(LineSeries::new(steps, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(r.policy.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 16))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Bottom panel: p95 latency per bucket, log scale, with the SLA wait as a reference line.
fn draw_latency(
    panel: &Panel<'_>,
    axis: &TimeAxis,
    results: &[RunResult],
    sla_latency: Duration,
) -> anyhow::Result<()> {
    let unit = axis.unit;
    let sla_ms = sla_latency.as_secs_f64() * 1000.0;
    let worst = results
        .iter()
        .flat_map(|r| r.buckets.iter().map(|b| b.p95_latency_ms))
        .fold(sla_ms.max(10.0), f64::max);
    let mut chart = ChartBuilder::on(panel)
        .caption("p95 latency per bucket (ms, log scale)", (FAMILY, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..axis.max, (1.0..worst * 1.5).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(axis.unit_name)
        .draw()
        .map_err(plot_error)?;
    for (i, r) in results.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points = r
            .buckets
            .iter()
            .filter(|b| b.p95_latency_ms > 0.0)
            .map(|b| {
                (
                    (b.start_seconds + r.bucket_seconds / 2.0) / unit,
                    b.p95_latency_ms.max(1.0),
                )
            });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?;
    }
    if sla_ms >= 1.0 {
        chart
            .draw_series(LineSeries::new(
                [(0.0, sla_ms), (axis.max, sla_ms)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(plot_error)?;
    }
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}
