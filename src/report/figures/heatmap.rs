//! The architecture distribution over epochs: one heat map per selector (choices × epochs, viridis
//! from probability 0 to 1), in a grid of four columns, with a colour bar under the grid.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{viridis, Scale};
use super::HeatPanel;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("{e:?}")
}

pub(crate) const COLUMNS: usize = 4;

pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panels: &[HeatPanel],
    s: Scale,
) -> Result<()> {
    if panels.is_empty() {
        return super::draw::empty(area, "no architecture distribution recorded yet", s);
    }
    let (grid, bar) = area.split_vertically(area.dim_in_pixel().1 - s.px(26.0));
    let rows = panels.len().div_ceil(COLUMNS);
    let cells = grid.split_evenly((rows, COLUMNS));
    for (p, cell) in panels.iter().zip(cells.iter()) {
        panel(cell, p, s)?;
    }
    colour_bar(&bar, s)
}

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &HeatPanel, s: Scale) -> Result<()> {
    let (n_e, n_c) = (p.epochs.len().max(1), p.choices.len().max(1));
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, s.font(6.0))
        .margin(s.px(2.0))
        .x_label_area_size(s.px(16.0))
        .y_label_area_size(s.px(42.0))
        .build_cartesian_2d(-0.5..(n_e as f64 - 0.5), -0.5..(n_c as f64 - 0.5))
        .map_err(err)?;
    let choices = p.choices.clone();
    let epochs = p.epochs.clone();
    let on_integer =
        |v: f64| ((v - v.round()).abs() < 1e-6 && v >= -1e-6).then(|| v.round() as usize);
    let fy = move |y: &f64| {
        on_integer(*y)
            .and_then(|i| choices.get(i).cloned())
            .unwrap_or_default()
    };
    let fx = move |x: &f64| {
        on_integer(*x)
            .and_then(|i| epochs.get(i).map(|e| e.to_string()))
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n_e.min(6))
        .y_labels(n_c)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .label_style(s.font(5.0))
        .x_desc("epoch")
        .axis_desc_style(s.font(5.5))
        .draw()
        .map_err(err)?;
    let mut rects = Vec::new();
    for (c, row) in p.prob.iter().enumerate() {
        for (e, v) in row.iter().enumerate() {
            let (x, y) = (e as f64, c as f64);
            rects.push(Rectangle::new(
                [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                viridis(*v).filled(),
            ));
        }
    }
    chart.draw_series(rects).map_err(err)?;
    Ok(())
}

fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, s: Scale) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let (x0, x1) = (w as i32 / 4, 3 * w as i32 / 4);
    let (y0, y1) = (s.px(4.0) as i32, s.px(12.0) as i32);
    let steps = 64;
    for i in 0..steps {
        let a = x0 + (x1 - x0) * i / steps;
        let b = x0 + (x1 - x0) * (i + 1) / steps;
        area.draw(&Rectangle::new(
            [(a, y0), (b, y1)],
            viridis(i as f64 / (steps - 1) as f64).filled(),
        ))
        .map_err(err)?;
    }
    let font = TextStyle::from(s.font(6.0)).color(&BLACK);
    area.draw_text(
        "probability 0",
        &font.pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Right,
            plotters::style::text_anchor::VPos::Top,
        )),
        (x0 - s.px(3.0) as i32, y0),
    )
    .map_err(err)?;
    area.draw_text("1", &font, (x1 + s.px(3.0) as i32, y0))
        .map_err(err)?;
    Ok(())
}
