//! Line panels with bands over seeds (side by side), the accuracy–latency scatter with its Pareto
//! front, and the "no runs yet" placeholder.

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{color, Scale};
use super::{Line, LinePanel, PointSet, ScatterPoint};

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// (lo, hi) padded by 5 % (and widened when all values are equal).
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return None;
    }
    if (hi - lo).abs() < 1e-12 {
        let d = if lo.abs() > 1e-12 {
            lo.abs() * 0.1
        } else {
            1.0
        };
        return Some((lo - d, hi + d));
    }
    let pad = (hi - lo) * 0.05;
    Some((lo - pad, hi + pad))
}

pub(crate) fn empty<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    msg: &str,
    s: Scale,
) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let style =
        TextStyle::from(s.font(10.0))
            .color(&BLACK)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ));
    area.draw_text(msg, &style, (w as i32 / 2, h as i32 / 2))
        .map_err(err)?;
    Ok(())
}

pub(crate) fn lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panels: &[LinePanel],
    s: Scale,
) -> Result<()> {
    let parts = area.split_evenly((1, panels.len().max(1)));
    for (panel, part) in panels.iter().zip(parts.iter()) {
        line_panel(part, panel, s)?;
    }
    Ok(())
}

fn line_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &LinePanel,
    s: Scale,
) -> Result<()> {
    let xs = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.x));
    let ys = p
        .lines
        .iter()
        .flat_map(|l| l.points.iter().flat_map(|q| [q.lo, q.hi, q.mean]));
    let (Some((x0, x1)), Some((y0, y1))) = (range(xs), range(ys)) else {
        let msg = if p.title.is_empty() {
            "no data yet".to_owned()
        } else {
            format!("{}: no data yet", p.title)
        };
        return empty(area, &msg, s);
    };
    let (x0, x1) = if p.x_categories.is_empty() {
        (x0, x1)
    } else {
        (-0.5, p.x_categories.len() as f64 - 0.5)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, s.font(8.0))
        .margin(s.px(5.0))
        .x_label_area_size(s.px(if p.x_categories.is_empty() {
            22.0
        } else {
            16.0
        }))
        .y_label_area_size(s.px(32.0))
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let cats = p.x_categories.clone();
    let fmt_cat = move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            cats.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .label_style(s.font(6.5))
        .axis_desc_style(s.font(7.5))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .axis_style(BLACK.stroke_width(s.px(0.5)))
        .x_labels(if p.x_categories.is_empty() {
            6
        } else {
            p.x_categories.len()
        })
        .y_labels(6);
    if !p.x_categories.is_empty() {
        mesh.x_label_formatter(&fmt_cat);
    }
    mesh.draw().map_err(err)?;
    for (i, l) in p.lines.iter().enumerate() {
        draw_line(&mut chart, l, color(i), p.dots, s)?;
    }
    if !p.lines.is_empty() {
        legend(&mut chart, SeriesLabelPosition::UpperRight, s)?;
    }
    Ok(())
}

/// One line of a panel: its band over seeds (lines only), the mean as a line (solid or dashed) with its
/// points, or as dots alone, and its legend entry.
fn draw_line<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    l: &Line,
    c: RGBColor,
    dots: bool,
    s: Scale,
) -> Result<()> {
    let width = s.px(1.0);
    let has_band = l.points.iter().any(|q| q.hi > q.lo);
    if has_band && !dots {
        let mut poly: Vec<(f64, f64)> = l.points.iter().map(|q| (q.x, q.hi)).collect();
        poly.extend(l.points.iter().rev().map(|q| (q.x, q.lo)));
        chart
            .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.2).filled())))
            .map_err(err)?;
    }
    let pts: Vec<(f64, f64)> = l.points.iter().map(|q| (q.x, q.mean)).collect();
    let r = s.px(if dots { 2.2 } else { 1.4 });
    let series = if dots {
        chart
            .draw_series(pts.iter().map(|&pt| Circle::new(pt, r, c.filled())))
            .map_err(err)?
    } else if l.dashed {
        chart
            .draw_series(DashedLineSeries::new(
                pts.clone(),
                s.px(3.0),
                s.px(2.0),
                c.stroke_width(width),
            ))
            .map_err(err)?
    } else {
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(width)))
            .map_err(err)?
    };
    let legend_w = s.px(12.0) as i32;
    series.label(&l.label).legend(move |(x, y)| {
        PathElement::new(vec![(x, y), (x + legend_w, y)], c.stroke_width(width))
    });
    if !dots {
        chart
            .draw_series(pts.iter().map(|&pt| Circle::new(pt, r, c.filled())))
            .map_err(err)?;
    }
    Ok(())
}

/// The points that no other point beats in both: higher y at no higher x.
pub(crate) fn pareto_front(points: &[ScatterPoint]) -> Vec<(f64, f64)> {
    let mut front: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| {
            !points
                .iter()
                .any(|q| q.x <= p.x && q.y >= p.y && (q.x < p.x || q.y > p.y))
        })
        .map(|p| (p.x, p.y))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    front.dedup();
    front
}

/// The legend of every chart: the series' labels in a framed, half-transparent box at `pos`.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    pos: SeriesLabelPosition,
    s: Scale,
) -> Result<()> {
    chart
        .configure_series_labels()
        .label_font(s.font(6.5))
        .legend_area_size(s.px(16.0))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(150, 150, 150))
        .position(pos)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Axes over x and y (each a (lo, hi) range) with their labels and a light grid: the frame of
/// every scatter.
fn xy_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x_label: &str,
    y_label: &str,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    s: Scale,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area)
        .margin(s.px(6.0))
        .x_label_area_size(s.px(24.0))
        .y_label_area_size(s.px(32.0))
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(s.font(6.5))
        .axis_desc_style(s.font(7.5))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

pub(crate) fn pareto<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    x_label: &str,
    y_label: &str,
    points: &[ScatterPoint],
    s: Scale,
) -> Result<()> {
    let (Some(x), Some(y)) = (
        range(points.iter().map(|p| p.x)),
        range(points.iter().map(|p| p.y)),
    ) else {
        return empty(area, "no runs yet", s);
    };
    let mut chart = xy_chart(area, x_label, y_label, x, y, s)?;
    let r = s.px(2.2);
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.x, p.y), r, color(0).filled())),
        )
        .map_err(err)?
        .label("runs")
        .legend(move |(x, y)| Circle::new((x, y), r, color(0).filled()));
    let front = pareto_front(points);
    let w = s.px(1.0);
    chart
        .draw_series(LineSeries::new(front, color(1).stroke_width(w)))
        .map_err(err)?
        .label("Pareto front")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 12, y)], color(1).stroke_width(w))
        });
    legend(&mut chart, SeriesLabelPosition::LowerRight, s)?;
    Ok(())
}

/// The random cloud in grey, drawn first; every other set with the i-th of four marker shapes in
/// the i-th colour, over it; the legend names each set.
pub(crate) fn scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    x_label: &str,
    y_label: &str,
    sets: &[PointSet],
    s: Scale,
) -> Result<()> {
    let all = || sets.iter().flat_map(|p| p.points.iter());
    let (Some(x), Some(y)) = (range(all().map(|p| p.x)), range(all().map(|p| p.y))) else {
        return empty(area, "no trained network yet", s);
    };
    let mut chart = xy_chart(area, x_label, y_label, x, y, s)?;
    let r = s.px(2.2) as i32;
    let grey = RGBColor(150, 150, 150).mix(0.55);
    let mut order: Vec<&PointSet> = sets.iter().filter(|p| p.cloud).collect();
    order.extend(sets.iter().filter(|p| !p.cloud));
    for (i, set) in order.iter().enumerate() {
        let pts: Vec<(f64, f64)> = set.points.iter().map(|p| (p.x, p.y)).collect();
        if set.cloud {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, r, grey.filled())))
                .map_err(err)?
                .label(&set.label)
                .legend(move |(x, y)| Circle::new((x, y), r, grey.filled()));
            continue;
        }
        let c = color(i);
        let w = s.px(1.0);
        let shape = i % 4;
        let anno =
            chart
                .draw_series(pts.iter().map(|&p| {
                    EmptyElement::at(p) + marker(shape, r, c.filled(), c.stroke_width(w))
                }))
                .map_err(err)?;
        anno.label(&set.label).legend(move |(x, y)| {
            EmptyElement::at((x, y)) + marker(shape, r, c.filled(), c.stroke_width(w))
        });
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, s)?;
    Ok(())
}

/// Marker `shape` (0 circle, 1 triangle, 2 square, 3 cross) of radius `r` around the origin.
fn marker<DB: DrawingBackend>(
    shape: usize,
    r: i32,
    fill: ShapeStyle,
    stroke: ShapeStyle,
) -> DynElement<'static, DB, (i32, i32)> {
    match shape {
        0 => Circle::new((0, 0), r, fill).into_dyn(),
        1 => TriangleMarker::new((0, 0), r + 1, fill).into_dyn(),
        2 => Rectangle::new([(-r, -r), (r, r)], fill).into_dyn(),
        _ => Cross::new((0, 0), r + 1, stroke).into_dyn(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> ScatterPoint {
        ScatterPoint { x, y }
    }

    #[test]
    fn the_pareto_front_keeps_only_undominated_points() {
        let pts = [p(1.0, 70.0), p(2.0, 75.0), p(2.5, 72.0), p(3.0, 76.0)];
        assert_eq!(
            pareto_front(&pts),
            vec![(1.0, 70.0), (2.0, 75.0), (3.0, 76.0)]
        );
    }
}
