//! PNG charts for `mmnet report`, drawn with plotters' bitmap backend. Text uses DejaVu
//! Sans embedded in the binary (assets/DejaVuSans.ttf), so reports render the same on a
//! machine without fontconfig or any installed font.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

const FONT: &str = "sans-serif";
const WIDTH: u32 = 900;
const HEIGHT: u32 = 640;

/// One line of a chart.
pub struct Series<'a> {
    /// Legend text.
    pub label: String,
    /// Points in data coordinates.
    pub points: &'a [(f64, f64)],
}

/// Registers the embedded font once per process; a failure is remembered, not retried.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .is_ok()
    });
    anyhow::ensure!(ok, "the embedded font could not be loaded");
    Ok(())
}

fn color(i: usize) -> RGBColor {
    // Colour-blind-safe (Okabe-Ito).
    const C: [RGBColor; 7] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
    ];
    C[i % C.len()]
}

fn draw_err<E: std::fmt::Debug>(path: &Path) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("drawing {}: {e:?}", path.display())
}

/// A line chart with labelled axes and a legend. `diagonal` adds the y = x reference line
/// (for ROC curves); `log_y` puts y on a log scale (for losses).
pub struct LineChart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// x axis label.
    pub x_label: &'a str,
    /// y axis label.
    pub y_label: &'a str,
    /// x range.
    pub x: (f64, f64),
    /// y range.
    pub y: (f64, f64),
    /// Draw y = x.
    pub diagonal: bool,
    /// Log-scale y.
    pub log_y: bool,
    /// Where the legend goes.
    pub legend: SeriesLabelPosition,
}

/// The series of a chart and its legend box. A macro because the linear and the log-scale
/// charts have different coordinate types and plotters' generic bounds for both are longer
/// than this body.
macro_rules! lines_and_legend {
    ($chart:ident, $series:expr, $position:expr, $err:ident) => {
        for (i, s) in $series.iter().enumerate() {
            let c = color(i);
            $chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err($err())?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                });
        }
        $chart
            .configure_series_labels()
            .position($position)
            .label_font((FONT, 17))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err($err())?;
    };
}

impl LineChart<'_> {
    /// Draws `series` to the PNG file `path`.
    pub fn draw(&self, path: &Path, series: &[Series<'_>]) -> Result<()> {
        let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err(path))?;
        self.draw_on(&root, path, series)?;
        root.present()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Draws `series` into one area of a bitmap (`path` names the file in errors).
    pub fn draw_on(
        &self,
        root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
        path: &Path,
        series: &[Series<'_>],
    ) -> Result<()> {
        register_font()?;
        let err = || draw_err(path);
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(self.title, (FONT, 26))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(76);
        if self.log_y {
            let mut chart = builder
                .build_cartesian_2d(self.x.0..self.x.1, (self.y.0..self.y.1).log_scale())
                .map_err(err())?;
            chart
                .configure_mesh()
                .x_desc(self.x_label)
                .y_desc(self.y_label)
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .axis_desc_style((FONT, 20))
                .label_style((FONT, 15))
                .draw()
                .map_err(err())?;
            lines_and_legend!(chart, series, self.legend.clone(), err);
        } else {
            let mut chart = builder
                .build_cartesian_2d(self.x.0..self.x.1, self.y.0..self.y.1)
                .map_err(err())?;
            chart
                .configure_mesh()
                .x_desc(self.x_label)
                .y_desc(self.y_label)
                .axis_desc_style((FONT, 20))
                .label_style((FONT, 15))
                .draw()
                .map_err(err())?;
            if self.diagonal {
                chart
                    .draw_series(LineSeries::new(
                        [(0.0, 0.0), (1.0, 1.0)],
                        BLACK.mix(0.35).stroke_width(1),
                    ))
                    .map_err(err())?
                    .label("chance")
                    .legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], BLACK.mix(0.35).stroke_width(1))
                    });
            }
            lines_and_legend!(chart, series, self.legend.clone(), err);
        }
        Ok(())
    }
}

/// Several charts stacked vertically in one PNG (e.g. losses of very different ranges).
pub fn stacked(path: &Path, charts: &[(LineChart<'_>, Vec<Series<'_>>)]) -> Result<()> {
    let h = HEIGHT / 2 * charts.len().max(1) as u32;
    let root = BitMapBackend::new(path, (WIDTH, h)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(path))?;
    let areas = root.split_evenly((charts.len().max(1), 1));
    for ((chart, series), area) in charts.iter().zip(&areas) {
        chart.draw_on(area, path, series)?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Overlaid histograms of `normal` and `anomalous` values (densities, so classes of very
/// different sizes compare), with the anomaly threshold as a vertical line.
pub fn score_histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    normal: &[f32],
    anomalous: &[f32],
    threshold: f32,
) -> Result<()> {
    register_font()?;
    let all = normal
        .iter()
        .chain(anomalous)
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    anyhow::ensure!(lo.is_finite() && hi.is_finite(), "no finite scores to plot");
    let (lo, hi) = (lo.min(threshold), hi.max(threshold));
    let span = if hi > lo { hi - lo } else { 1.0 };
    const BINS: usize = 60;
    let width = span / BINS as f32;
    let density = |v: &[f32]| -> Vec<f64> {
        let mut h = vec![0f64; BINS];
        let finite: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
        for x in &finite {
            let b = (((x - lo) / width) as usize).min(BINS - 1);
            h[b] += 1.0;
        }
        let n = finite.len().max(1) as f64;
        h.iter().map(|c| c / (n * width as f64)).collect()
    };
    let (hn, ha) = (density(normal), density(anomalous));
    let top = hn.iter().chain(&ha).copied().fold(0.0, f64::max) * 1.08;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    let err = || draw_err(path);
    root.fill(&WHITE).map_err(err())?;
    let x0 = lo as f64 - 0.02 * span as f64;
    let x1 = hi as f64 + 0.02 * span as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(76)
        .build_cartesian_2d(x0..x1, 0.0..top.max(1e-9))
        .map_err(err())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("density (each class sums to 1)")
        .axis_desc_style((FONT, 20))
        .label_style((FONT, 15))
        .draw()
        .map_err(err())?;
    let classes = [
        (&hn, color(0), format!("normal rows ({})", normal.len())),
        (
            &ha,
            color(1),
            format!("anomalous rows ({})", anomalous.len()),
        ),
    ];
    for (h, c, label) in classes {
        chart
            .draw_series(h.iter().enumerate().map(|(i, &d)| {
                let a = lo as f64 + i as f64 * width as f64;
                Rectangle::new([(a, 0.0), (a + width as f64, d)], c.mix(0.45).filled())
            }))
            .map_err(err())?
            .label(label)
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 20, y + 6)], c.mix(0.45).filled())
            });
    }
    let t = threshold as f64;
    chart
        .draw_series(LineSeries::new([(t, 0.0), (t, top)], BLACK.stroke_width(2)))
        .map_err(err())?
        .label(format!("threshold {threshold:.3}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 17))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err())?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
