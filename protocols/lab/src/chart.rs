//! The chart: bytes sent, received and buffered over time, one panel per
//! run, drawn into an SVG file (`--svg FILE`). The only user of plotters.

use std::fmt;
use std::io;
use std::path::Path;

use crate::report::Report;
use crate::sample::Sample;

/// Draws bytes sent, received and buffered over time, one panel per run.
pub fn write_svg(report: &Report, path: &Path) -> io::Result<()> {
    use plotters::prelude::*;
    let err = |e: &dyn fmt::Display| io::Error::other(format!("{}: {e}", path.display()));
    let n = report.scenarios.len().max(1);
    let root = SVGBackend::new(path, (900, 260 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    for (area, s) in root.split_evenly((n, 1)).iter().zip(&report.scenarios) {
        let mb = |b: u64| b as f64 / 1e6;
        let t_max = s.samples.last().map_or(1.0, |x| x.t.as_secs_f64()).max(0.05);
        let top = s.samples.iter().map(|x| x.sent.max(x.received).max(x.buffered)).max().unwrap_or(0);
        // Headroom above the lines for the legend.
        let y_max = mb(top.max(s.cap.unwrap_or(0) as u64)).max(0.1) * 1.6;
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{}. {} ({})", s.number, s.title, s.outcome), ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..t_max * 1.02, 0f64..y_max)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("seconds").y_desc("MB").draw().map_err(|e| err(&e))?;
        type Line = (&'static str, RGBColor, fn(&Sample) -> u64);
        let lines: [Line; 3] = [
            ("sent by the client", BLUE, |x| x.sent),
            ("received by the client", GREEN, |x| x.received),
            ("buffered by twirl", RED, |x| x.buffered),
        ];
        for (label, color, get) in lines {
            let points = s.samples.iter().map(|x| (x.t.as_secs_f64(), mb(get(x))));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        if let Some(cap) = s.cap {
            let y = mb(cap as u64);
            chart
                .draw_series(LineSeries::new([(0.0, y), (t_max, y)], BLACK.mix(0.6)))
                .map_err(|e| err(&e))?
                .label("twirl's hard cap")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
