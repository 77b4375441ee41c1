//! The report's figures: each a named [`Figure`] (`unas report --figure NAME`) holding the data it
//! draws, rendered by plotters to SVG (7 in wide) and to PNG at 300 dpi for a 3.5-inch column and a
//! 7-inch page (`<name>.svg`, `<name>-column.png`, `<name>-page.png`). Text is the bundled DejaVu Sans
//! through ab_glyph. Figures made from smoke-tier runs say so in the image and in their caption.

mod cells;
mod draw;
mod heatmap;
pub(crate) mod make;
pub(crate) mod style;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::aggregate::BandPoint;
use super::table::SMOKE_CAPTION;
use style::Scale;

pub(crate) use make::all;

/// One line of a line panel, with its band over seeds.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub label: String,
    pub points: Vec<BandPoint>,
    pub dashed: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    /// Category names of the x axis (seed-spread figures): x = 0, 1, ... is the i-th name.
    pub x_categories: Vec<String>,
    /// Draw points only (no connecting line): one dot per seed.
    pub dots: bool,
}

/// One selector's probabilities: rows are the choices, columns the epochs.
#[derive(Clone, Debug)]
pub(crate) struct HeatPanel {
    pub title: String,
    pub choices: Vec<String>,
    pub epochs: Vec<i64>,
    /// `prob[choice][epoch]`.
    pub prob: Vec<Vec<f64>>,
}

/// A DARTS cell: inputs, intermediate nodes, the output, and the ops on the edges.
#[derive(Clone, Debug)]
pub(crate) struct CellGraph {
    pub title: String,
    /// (from, to, op) with nodes numbered as in the genotype: 0 = c_{k-2}, 1 = c_{k-1}, 2.. nodes.
    pub edges: Vec<(usize, usize, String)>,
    pub nodes: usize,
    pub concat: Vec<usize>,
}

#[derive(Clone, Debug)]
pub(crate) struct ScatterPoint {
    pub x: f64,
    pub y: f64,
}

/// The points of one kind in a scatter: the random architectures (one grey cloud), or one
/// experiment's trained networks (a marker and colour of their own).
#[derive(Clone, Debug)]
pub(crate) struct PointSet {
    pub label: String,
    pub points: Vec<ScatterPoint>,
    pub cloud: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum Plot {
    Lines(Vec<LinePanel>),
    Heat(Vec<HeatPanel>),
    Cells(Vec<CellGraph>),
    /// Accuracy against latency with the Pareto front (higher y and lower x is better).
    Pareto {
        x_label: String,
        y_label: String,
        points: Vec<ScatterPoint>,
    },
    /// Every trained architecture as a point (lower left is better): random ones as a cloud, each
    /// other experiment its own marker.
    Scatter {
        x_label: String,
        y_label: String,
        sets: Vec<PointSet>,
    },
    /// Nothing to draw yet: the message is drawn in the figure.
    Empty(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Figure {
    pub name: String,
    pub title: String,
    pub caption: String,
    /// Height / width.
    pub aspect: f64,
    pub smoke: bool,
    /// The group (experiment | tier | config) whose page shows it; `None` for suite-wide figures.
    pub group: Option<String>,
    /// The table it belongs to (seed-spread figures), shown beside that table.
    pub table: Option<String>,
    /// The stage whose cell it belongs to on an experiment page.
    pub stage: &'static str,
    pub plot: Plot,
}

/// The three files of a figure.
pub(crate) struct Rendered {
    pub svg: String,
    pub png_column: Vec<u8>,
    pub png_page: Vec<u8>,
}

impl Figure {
    /// The caption, with the smoke-tier warning first where it applies.
    pub(crate) fn full_caption(&self) -> String {
        if self.smoke {
            format!("{SMOKE_CAPTION}. {}", self.caption)
        } else {
            self.caption.clone()
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, s: Scale) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        super::font::register();
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {}: {e:?}", self.name);
        root.fill(&WHITE).map_err(err)?;
        let area = if self.smoke {
            let (banner, rest) = root.split_vertically(s.px(12.0));
            banner
                .draw_text(
                    SMOKE_CAPTION,
                    &TextStyle::from(s.font(7.0)).color(&style::color(1)),
                    (s.px(4.0) as i32, s.px(2.0) as i32),
                )
                .map_err(err)?;
            rest
        } else {
            root.clone()
        };
        match &self.plot {
            Plot::Lines(panels) => draw::lines(&area, panels, s),
            Plot::Heat(panels) => heatmap::draw(&area, panels, s),
            Plot::Cells(cells) => cells::draw(&area, cells, s),
            Plot::Pareto {
                x_label,
                y_label,
                points,
            } => draw::pareto(&area, x_label, y_label, points, s),
            Plot::Scatter {
                x_label,
                y_label,
                sets,
            } => draw::scatter(&area, x_label, y_label, sets, s),
            Plot::Empty(msg) => draw::empty(&area, msg, s),
        }
        .with_context(|| format!("drawing figure {}", self.name))?;
        root.present().map_err(err)?;
        Ok(())
    }

    pub(crate) fn svg(&self) -> Result<String> {
        let (w, h) = style::pixels(style::PAGE_IN, self.aspect, 96.0);
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (w, h)).into_drawing_area();
            self.draw(&root, Scale::SVG)?;
        }
        Ok(out)
    }

    /// PNG `width_in` inches wide at 300 dpi (RGB, with a pHYs chunk saying 300 dpi).
    pub(crate) fn png(&self, width_in: f64) -> Result<Vec<u8>> {
        let (w, h) = style::pixels(width_in, self.aspect, style::DPI);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            self.draw(&root, Scale::PRINT)?;
        }
        encode_png(&buf, w, h)
    }

    pub(crate) fn render(&self) -> Result<Rendered> {
        Ok(Rendered {
            svg: self.svg()?,
            png_column: self.png(style::COLUMN_IN)?,
            png_page: self.png(style::PAGE_IN)?,
        })
    }
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        // 300 dots per inch = 11811 per metre.
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: 11811,
            yppu: 11811,
            unit: png::Unit::Meter,
        }));
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// The file names of a figure under `dir/figures/`.
pub(crate) fn paths(dir: &Path, name: &str) -> [PathBuf; 3] {
    let d = dir.join("figures");
    [
        d.join(format!("{name}.svg")),
        d.join(format!("{name}-column.png")),
        d.join(format!("{name}-page.png")),
    ]
}

/// Writes the three files (atomically) and returns their paths and the SVG text.
pub(crate) fn write(dir: &Path, f: &Figure) -> Result<(Vec<PathBuf>, String)> {
    let r = f.render()?;
    let [svg, col, page] = paths(dir, &f.name);
    crate::results::atomic::write_atomic(&svg, r.svg.as_bytes())?;
    crate::results::atomic::write_atomic(&col, &r.png_column)?;
    crate::results::atomic::write_atomic(&page, &r.png_page)?;
    Ok((vec![svg, col, page], r.svg))
}

/// A file-name-safe slug.
pub(crate) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}
