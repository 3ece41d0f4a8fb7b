//! The sweep as a picture: every policy's frontier, pod-hours against requests over the SLA
//! (log scale), one line per policy through its knob values in order, a cross at its
//! defaults. Lower and further left is better. The project's shared look ([`harness_core::plot`]).

use std::path::Path;

use anyhow::anyhow;
use harness_core::plot::{self, FAMILY, PALETTE};
use plotters::prelude::*;

use super::report::SweepReport;

/// Zero violations cannot sit on a log axis: they are drawn here.
const ZERO_AT: f64 = 0.5;

pub fn draw(path: &Path, report: &SweepReport) -> anyhow::Result<()> {
    plot::register()?;
    let points = || {
        report
            .policies
            .iter()
            .flat_map(|p| p.frontier.iter().chain(p.at_defaults.iter()))
    };
    let hours = |s: f64| s / 3600.0;
    let y = |v: u64| if v == 0 { ZERO_AT } else { v as f64 };
    let max_x = points().map(|p| hours(p.pod_seconds)).fold(0.0, f64::max);
    let min_x = points().map(|p| hours(p.pod_seconds)).fold(max_x, f64::min);
    let max_y = points().map(|p| y(p.sla_violations)).fold(1.0, f64::max);
    let pad = ((max_x - min_x) * 0.05).max(0.1);
    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let name = Path::new(&report.workload)
        .file_name()
        .map_or(report.workload.clone(), |n| {
            n.to_string_lossy().into_owned()
        });
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{name}: cost against requests over the SLA (lower left is better)"),
            (FAMILY, 22),
        )
        .margin(16)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (min_x - pad).max(0.0)..max_x + pad,
            (ZERO_AT * 0.8..max_y * 2.0).log_scale(),
        )
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("pod-hours")
        .y_desc(format!("requests over the SLA (0 drawn at {ZERO_AT})"))
        .y_label_formatter(&|v| {
            if *v < 1.0 {
                "0".to_owned()
            } else {
                format!("{v:.0}")
            }
        })
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FAMILY, 15))
        .draw()
        .map_err(plot_error)?;
    for (i, p) in report.policies.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // In knob order, cheapest setting first: where a policy turns back on itself (costs
        // more and violates more), the line shows it.
        let line: Vec<(f64, f64)> = p
            .frontier
            .iter()
            .map(|pt| (hours(pt.pod_seconds), y(pt.sla_violations)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(format!("{} ({})", p.policy, p.knob))
            .legend(plot::legend_line(color));
        chart
            .draw_series(
                line.iter()
                    .map(|&(x, v)| Circle::new((x, v), 4, color.filled())),
            )
            .map_err(plot_error)?;
        if let Some(d) = p.at_defaults {
            chart
                .draw_series(std::iter::once(Cross::new(
                    (hours(d.pod_seconds), y(d.sla_violations)),
                    9,
                    color.stroke_width(3),
                )))
                .map_err(plot_error)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FAMILY, 16))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}
