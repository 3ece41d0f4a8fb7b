//! PNG plots of a run, drawn with plotters in the project's shared look
//! ([`harness_core::plot`]: embedded font, colour-blind-safe palette).
//!
//! Every function here is CPU-bound; callers run them on the blocking pool.

use std::path::Path;

use harness_core::plot::{
    self, BLUE, FAMILY, GREEN, GREY, INK, ORANGE, PURPLE, SKY, VERMILION, headroom, legend_line,
    ticks,
};
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::ledger::SecondBin;
use crate::sampler::{SeriesKind, Timeline};

/// Why a plot could not be drawn (plotters' backend and layout errors). `Send + Sync` so that
/// a report error can cross threads and await points with its cause.
pub type PlotError = Box<dyn std::error::Error + Send + Sync>;

type PlotResult<T = ()> = Result<T, PlotError>;

pub const SIZE: (u32, u32) = (1200, 560);

fn canvas(path: &Path) -> PlotResult<DrawingArea<BitMapBackend<'_>, Shift>> {
    plot::register()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// p50/p95/p99 of successful requests by the second they were sent in. Returns false (and
/// draws nothing) when no second has data.
pub fn latency_over_time(path: &Path, seconds: &[SecondBin]) -> PlotResult<bool> {
    let quantiles = [
        ("p50", 0.50, BLUE),
        ("p95", 0.95, ORANGE),
        ("p99", 0.99, VERMILION),
    ];
    let per_second: Vec<Option<[f64; 3]>> = seconds
        .iter()
        .map(|bin| {
            let h = &bin.latency;
            if h.is_empty() {
                return None;
            }
            Some(quantiles.map(|(_, q, _)| h.value_at_quantile(q).unwrap_or(0) as f64 / 1000.0))
        })
        .collect();
    let y_max = per_second
        .iter()
        .flatten()
        .map(|v| v[2])
        .fold(0.0, f64::max);
    if y_max == 0.0 {
        return Ok(false);
    }
    let root = canvas(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency by send second (dispatcher-reported, successful requests)",
            (FAMILY, 26),
        )
        .margin(20)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..seconds.len().max(1) as f64, 0f64..headroom(y_max))?;
    let x_ticks = ticks(seconds.len() as f64);
    chart
        .configure_mesh()
        .x_label_formatter(&x_ticks)
        .x_desc("seconds since the test start (when the request was sent)")
        .y_desc("latency (ms)")
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (i, (name, _, color)) in quantiles.into_iter().enumerate() {
        // One line per run of consecutive seconds with data, so gaps stay gaps.
        let mut labelled = false;
        let mut segment: Vec<(f64, f64)> = Vec::new();
        for (second, values) in per_second
            .iter()
            .enumerate()
            .chain([(per_second.len(), &None)])
        {
            match values {
                Some(v) => segment.push((second as f64 + 0.5, v[i])),
                None if !segment.is_empty() => {
                    let points = std::mem::take(&mut segment);
                    // A lone second has no line to draw: mark it with a dot.
                    if let [point] = points[..] {
                        chart.draw_series([Circle::new(point, 3, color.filled())])?;
                    }
                    let series =
                        chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
                    if !labelled {
                        series.label(name).legend(legend_line(color));
                        labelled = true;
                    }
                }
                None => {}
            }
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(true)
}

/// Histogram (left) and CDF (right) of end-to-end latency. False when there is no sample.
pub fn latency_distribution(path: &Path, latency: &Histogram<u64>) -> PlotResult<bool> {
    if latency.is_empty() {
        return Ok(false);
    }
    let root = canvas(path)?;
    let root = root.titled("Latency distribution (successful requests)", (FAMILY, 26))?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let ms = |us: u64| us as f64 / 1000.0;

    // Histogram: 60 equal bars up to p99.9, so one outlier does not squash the rest; what lies
    // beyond is counted in the last bar and said so on the axis.
    const BARS: usize = 60;
    let upper = ms(latency.value_at_quantile(0.999)).max(ms(latency.min()) + 0.001);
    let width = upper / BARS as f64;
    let mut counts = [0u64; BARS];
    for v in latency.iter_recorded() {
        let bar = ((ms(v.value_iterated_to()) / width) as usize).min(BARS - 1);
        counts[bar] += v.count_at_value();
    }
    let count_max = counts.iter().copied().max().unwrap_or(1) as f64;
    let count_ticks = |v: &f64| format!("{v:.0}");
    let mut chart = ChartBuilder::on(&left)
        .margin(20)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..upper, 0f64..headroom(count_max))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_labels((count_max as usize + 1).clamp(2, 10))
        .y_label_formatter(&count_ticks)
        .x_desc("latency (ms); last bar includes everything above p99.9")
        .y_desc("requests")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
        let x0 = i as f64 * width;
        Rectangle::new(
            [(x0, 0.0), (x0 + width * 0.92, c as f64)],
            BLUE.mix(0.85).filled(),
        )
    }))?;

    // CDF over the whole range, with the headline percentiles marked.
    let max = ms(latency.max()).max(0.001);
    let mut chart = ChartBuilder::on(&right)
        .margin(20)
        .x_label_area_size(56)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max * 1.02, 0f64..100.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("percentile")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let mut points = vec![(ms(latency.min()), 0.0)];
    points.extend(
        latency
            .iter_recorded()
            .map(|v| (ms(v.value_iterated_to()), v.percentile())),
    );
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?
        .label("CDF")
        .legend(legend_line(BLUE));
    for (name, q, color) in [
        ("p50", 0.5, GREEN),
        ("p90", 0.9, ORANGE),
        ("p99", 0.99, VERMILION),
    ] {
        let x = ms(latency.value_at_quantile(q));
        chart
            .draw_series(LineSeries::new(
                [(x, 0.0), (x, 100.0)],
                color.stroke_width(2),
            ))?
            .label(format!("{name} = {x:.1} ms"))
            .legend(legend_line(color));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(true)
}

/// Offered load (the workload) against what was sent, completed and failed, per second.
pub fn throughput(path: &Path, rates: &[u32], seconds: &[SecondBin]) -> PlotResult<bool> {
    let len = rates.len().max(seconds.len()).max(1);
    let per = |f: &dyn Fn(&SecondBin) -> u32| -> Vec<(f64, f64)> {
        (0..len)
            .map(|s| {
                let v = seconds.get(s).map_or(0, f);
                (s as f64 + 0.5, f64::from(v))
            })
            .collect()
    };
    let sent = per(&|b| b.sent);
    let succeeded = per(&|b| b.succeeded);
    let failed = per(&|b| b.failed + b.rejected + b.send_errors);
    let y_max = [&sent, &succeeded, &failed]
        .iter()
        .flat_map(|s| s.iter().map(|p| p.1))
        .chain(rates.iter().map(|&r| f64::from(r)))
        .fold(0.0, f64::max);

    let root = canvas(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Offered vs sent vs completed requests per second",
            (FAMILY, 26),
        )
        .margin(20)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..len as f64, 0f64..headroom(y_max))?;
    let (x_ticks, y_ticks) = (ticks(len as f64), ticks(y_max));
    chart
        .configure_mesh()
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .x_desc("seconds since the test start")
        .y_desc("requests per second")
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let offered = rates
        .iter()
        .enumerate()
        .flat_map(|(s, &r)| [(s as f64, f64::from(r)), (s as f64 + 1.0, f64::from(r))]);
    chart
        .draw_series(
            AreaSeries::new(offered, 0.0, GREY.mix(0.25)).border_style(GREY.stroke_width(2)),
        )?
        .label("offered (workload)")
        .legend(legend_line(GREY));
    for (name, points, color) in [
        ("sent", sent, BLUE),
        ("completed ok (by completion time)", succeeded, GREEN),
        (
            "failed (rejected, errors, failed outcomes)",
            failed,
            VERMILION,
        ),
    ] {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(legend_line(color));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(true)
}

/// Sampled queue length (left axis) and replica counts (right axis). False without samples.
pub fn queue_and_replicas(path: &Path, timeline: &Timeline) -> PlotResult<bool> {
    if timeline.is_empty() {
        return Ok(false);
    }
    let series = timeline.series();
    let max_of = |kind: SeriesKind| {
        series
            .values()
            .filter(|s| s.kind == kind)
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max)
    };
    let x_max = series
        .values()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let (queue_max, replica_max) = (max_of(SeriesKind::Queue), max_of(SeriesKind::Replicas));

    let root = canvas(path)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Dispatcher queue and replicas over time", (FAMILY, 26))
        .margin(20)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..headroom(queue_max))?
        .set_secondary_coord(0f64..x_max, 0f64..(replica_max + 1.0).ceil());
    let (x_ticks, y_ticks) = (ticks(x_max), ticks(queue_max));
    chart
        .configure_mesh()
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .x_desc("seconds since the test start")
        .y_desc("items in queue")
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let replica_ticks = |v: &f64| format!("{v:.0}");
    chart
        .configure_secondary_axes()
        .y_labels(((replica_max + 1.0).ceil() as usize + 1).min(12))
        .y_label_formatter(&replica_ticks)
        .y_desc("replicas")
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .draw()?;
    let queue_colors = [BLUE, SKY];
    let replica_colors = [GREEN, PURPLE, ORANGE, INK];
    let (mut q, mut r) = (0, 0);
    for (name, s) in series {
        match s.kind {
            SeriesKind::Queue => {
                let color = queue_colors[q % queue_colors.len()];
                q += 1;
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))?
                    .label(format!("{name} (left axis)"))
                    .legend(legend_line(color));
            }
            SeriesKind::Replicas => {
                let color = replica_colors[r % replica_colors.len()];
                r += 1;
                // Replica counts change in steps: draw them as steps.
                let steps: Vec<(f64, f64)> = s
                    .points
                    .windows(2)
                    .flat_map(|w| [w[0], (w[1].0, w[0].1)])
                    .chain(s.points.last().copied())
                    .collect();
                chart
                    .draw_secondary_series(LineSeries::new(steps, color.stroke_width(3)))?
                    .label(format!("{name} (right axis)"))
                    .legend(legend_line(color));
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font((FAMILY, 16))
        .draw()?;
    root.present()?;
    Ok(true)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .label_font((FAMILY, 16))
        .draw()
        .map_err(|e| e.to_string().into())
}
