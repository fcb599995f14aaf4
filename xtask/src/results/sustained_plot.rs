//! The sustained run as a picture: every (sampled) inference's latency over the run's seconds, and each minute's p50
//! and p99 as steps, so throttling shows as a rise (SVG and PNG).

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{plot_err, register_font};
use bench_schema::sustained::Sustained;

/// Writes `<stem>.svg` and `<stem>.png` for the run.
pub fn write(sustained: &Sustained, title: &str, stem: &Path) -> Result<()> {
    register_font()?;
    let svg = stem.with_extension("svg");
    let area = SVGBackend::new(&svg, (1000, 480)).into_drawing_area();
    draw(&area, sustained, title)?;
    area.present()?;
    let png = stem.with_extension("png");
    let area = BitMapBackend::new(&png, (1000, 480)).into_drawing_area();
    draw(&area, sustained, title)?;
    area.present()?;
    println!("plot: {} and {}", svg.display(), png.display());
    Ok(())
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, s: &Sustained, title: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(plot_err)?;
    let seconds = f64::from(s.minutes) * 60.0;
    let mut latencies: Vec<f64> = s.latency_over_time.iter().map(|p| p[1]).collect();
    latencies.sort_by(f64::total_cmp);
    // Up to the 99.9th percentile: one stall should not flatten the rest.
    let top = latencies
        .get(latencies.len() * 999 / 1000)
        .copied()
        .unwrap_or(1.0)
        .max(s.per_minute.iter().map(|m| m.p99_ms).fold(0.0, f64::max))
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..seconds, 0.0..top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the run")
        .y_desc("latency (ms)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    let dots = s.latency_over_time.iter().map(|p| Circle::new((p[0], p[1].min(top)), 1, BLUE.mix(0.25).filled()));
    chart
        .draw_series(dots)
        .map_err(plot_err)?
        .label("each inference (sampled)")
        .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
    let steps = |value: fn(&bench_schema::sustained::Minute) -> f64| {
        s.per_minute
            .iter()
            .flat_map(move |m| {
                let start = f64::from(m.minute - 1) * 60.0;
                [(start, value(m)), (start + 60.0, value(m))]
            })
            .collect::<Vec<_>>()
    };
    chart
        .draw_series(std::iter::once(PathElement::new(steps(|m| m.p50_ms), RED.stroke_width(2))))
        .map_err(plot_err)?
        .label("p50 per minute")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED.stroke_width(2)));
    chart
        .draw_series(std::iter::once(PathElement::new(steps(|m| m.p99_ms), BLACK.stroke_width(1))))
        .map_err(plot_err)?
        .label("p99 per minute")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}
