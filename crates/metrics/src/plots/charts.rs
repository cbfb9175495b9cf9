//! Line charts over thresholds and the per-video bar chart.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::style::{save_rgb, COLOURS, FAMILY};
use crate::io::compare::Comparison;
use crate::io::Aggregation;

pub(crate) type Draw = fn(&Comparison, Aggregation, &Path) -> Result<()>;

const SIZE: (u32, u32) = (900, 640);

fn curve<'a>(c: &'a Comparison, system: usize, key: &str, aggregation: Aggregation) -> &'a [f64] {
    let curves = &c.systems[system].curves;
    let by_key = match aggregation {
        Aggregation::VideoMean => &curves.video_mean,
        Aggregation::Overall => &curves.overall,
    };
    by_key.get(key).map_or(&[], |v| v.as_slice())
}

fn aggregation_words(a: Aggregation) -> &'static str {
    match a {
        Aggregation::VideoMean => "mean over videos",
        Aggregation::Overall => "mean over frames",
    }
}

/// One line per system through `points(system)` in [x_range] × [0, 1].
fn line_chart(
    c: &Comparison,
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    x_range: std::ops::Range<f64>,
    legend_at: SeriesLabelPosition,
    points: impl Fn(usize) -> Vec<(f64, f64)>,
) -> Result<()> {
    let (w, h) = SIZE;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range, 0f64..1.0)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, system) in c.systems.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(points(i), colour.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(system.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(legend_at)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    save_rgb(path, w, h, buf)
}

fn against_threshold(c: &Comparison, a: Aggregation, key: &str, i: usize) -> Vec<(f64, f64)> {
    curve(c, i, key, a)
        .iter()
        .enumerate()
        .map(|(t, &v)| (t as f64, v))
        .collect()
}

pub(crate) fn precision_recall(c: &Comparison, a: Aggregation, path: &Path) -> Result<()> {
    line_chart(
        c,
        path,
        &format!(
            "Precision–recall ({}, {} frames)",
            aggregation_words(a),
            c.frames
        ),
        ("recall", "precision"),
        0.0..1.0,
        SeriesLabelPosition::LowerLeft,
        |i| {
            let p = curve(c, i, "precision", a);
            let r = curve(c, i, "recall", a);
            r.iter().zip(p).map(|(&r, &p)| (r, p)).collect()
        },
    )
}

pub(crate) fn f_measure(c: &Comparison, a: Aggregation, path: &Path) -> Result<()> {
    line_chart(
        c,
        path,
        &format!(
            "F-measure (β² = 0.3) against threshold ({})",
            aggregation_words(a)
        ),
        ("threshold (prediction ≥ t / 255)", "F-measure"),
        0.0..255.0,
        SeriesLabelPosition::UpperRight,
        |i| against_threshold(c, a, "fm", i),
    )
}

pub(crate) fn e_measure(c: &Comparison, a: Aggregation, path: &Path) -> Result<()> {
    line_chart(
        c,
        path,
        &format!("E-measure against threshold ({})", aggregation_words(a)),
        ("threshold (prediction ≥ t / 255)", "E-measure"),
        0.0..255.0,
        SeriesLabelPosition::LowerRight,
        |i| against_threshold(c, a, "em", i),
    )
}

pub(crate) fn miou_per_video(c: &Comparison, _a: Aggregation, path: &Path) -> Result<()> {
    let videos: Vec<&String> = c.systems[0].report.per_video.keys().collect();
    let n_sys = c.systems.len();
    let group = (n_sys as u32 * 12 + 16).max(48);
    let w = (120 + videos.len() as u32 * group).clamp(700, 6000);
    let h = 560;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption("mIoU per video", (FAMILY, 22))
            .margin(16)
            .x_label_area_size(90)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..videos.len() as f64, 0f64..1.0)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc("mIoU (mean over thresholds)")
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        let width = 0.8 / n_sys as f64;
        for (s, system) in c.systems.iter().enumerate() {
            let colour = COLOURS[s % COLOURS.len()];
            let bars = videos.iter().enumerate().filter_map(|(v, video)| {
                let value = system.report.per_video[*video].get("iou_mean")?;
                let x0 = v as f64 + 0.1 + s as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width, value)],
                    colour.filled(),
                ))
            });
            chart
                .draw_series(bars)
                .map_err(|e| anyhow!("{e}"))?
                .label(system.name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        // Video names under their group, drawn on the root in pixel coordinates.
        let style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ),
        );
        for (v, video) in videos.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(v as f64 + 0.5, 0.0));
            let label: String = if video.chars().count() > 14 {
                video.chars().take(13).chain(std::iter::once('…')).collect()
            } else {
                video.to_string()
            };
            root.draw(&Text::new(label, (x, y + 6), style.clone()))
                .map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    save_rgb(path, w, h, buf)
}
