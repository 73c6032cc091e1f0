//! SVG charts of a run (plotters): latency CDFs and users per server over time.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

const COLORS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];

/// The latency CDF of each histogram, on a log scale of milliseconds.
pub(crate) fn latency_cdf(path: &Path, title: &str, series: &[(&str, &Histogram<u64>)]) -> Result<(), String> {
    let max_ms = series.iter().filter(|(_, h)| !h.is_empty()).map(|(_, h)| h.max() as f64 / 1000.0).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.01f64..max_ms * 1.2).log_scale(), 0f64..100f64)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("latency (ms)").y_desc("percentile").draw().map_err(|e| e.to_string())?;
    for (i, (name, h)) in series.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        // Every recorded bucket, with the share of samples at or below it.
        let total = h.len() as f64;
        let mut seen = 0u64;
        let points: Vec<(f64, f64)> = h
            .iter_recorded()
            .map(|v| {
                seen += v.count_at_value();
                ((v.value_iterated_to() as f64 / 1000.0).max(0.01), seen as f64 / total * 100.0)
            })
            .collect();
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, &color))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Users per server over time (seconds).
pub(crate) fn users_over_time(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<(), String> {
    let t_max = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.0)).fold(1.0, f64::max);
    let u_max = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0f64..u_max * 1.1)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("seconds").y_desc("users").draw().map_err(|e| e.to_string())?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), &color))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
