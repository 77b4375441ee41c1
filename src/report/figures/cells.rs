//! A derived DARTS cell as a graph: the two inputs c_{k-2} and c_{k-1} (drawn `k-2`, `k-1`), the
//! intermediate nodes 0–3 and the output c_{k} (`k`), with the op on every edge. Nodes are placed by a layered (longest-path) layout
//! computed from the genotype — a node's layer is one more than its deepest input — and spread evenly
//! within a layer; parallel edges (both selectors on one input) are bowed apart so their labels
//! never sit on each other.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{color, Scale};
use super::CellGraph;

/// Size of the op on an edge and of a node's name, in points. The SVG is 7 in wide and shown unscaled
/// in the page's text column, and plotters writes a font of p pt at 96 dpi as 1.075·p px: 10 pt is
/// 10.75 px there, near the page's .82rem tables (5 pt, the size before, was 5.4 px: unreadable).
pub(crate) const LABEL_PT: f64 = 10.0;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("{e:?}")
}

fn node_name(i: usize, nodes: usize) -> String {
    match i {
        0 => "k-2".into(),
        1 => "k-1".into(),
        i if i == nodes + 2 => "k".into(),
        i => format!("{}", i - 2),
    }
}

/// Layer of every node: inputs 0, node = 1 + max layer of its inputs, output = last layer + 1.
pub(crate) fn layers(g: &CellGraph) -> Vec<usize> {
    let total = g.nodes + 3;
    let mut layer = vec![0usize; total];
    for to in 2..g.nodes + 2 {
        let deepest = g
            .edges
            .iter()
            .filter(|(_, t, _)| *t == to)
            .map(|(f, _, _)| layer[*f])
            .max()
            .unwrap_or(0);
        layer[to] = deepest + 1;
    }
    let last = layer[2..g.nodes + 2].iter().copied().max().unwrap_or(0);
    layer[g.nodes + 2] = last + 1;
    layer
}

fn positions(g: &CellGraph, w: f64, h: f64, margin: f64) -> Vec<(f64, f64)> {
    let layer = layers(g);
    let n_layers = layer.iter().copied().max().unwrap_or(0) + 1;
    let mut by_layer: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, l) in layer.iter().enumerate() {
        by_layer.entry(*l).or_default().push(i);
    }
    let mut pos = vec![(0.0, 0.0); layer.len()];
    for (l, members) in by_layer {
        let x = margin + (w - 2.0 * margin) * l as f64 / (n_layers - 1).max(1) as f64;
        for (k, &i) in members.iter().enumerate() {
            let y = margin + (h - 2.0 * margin) * (k as f64 + 0.5) / members.len() as f64;
            pos[i] = (x, y);
        }
    }
    pos
}

pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cells: &[CellGraph],
    s: Scale,
) -> Result<()> {
    if cells.is_empty() {
        return super::draw::empty(area, "no derived cell yet", s);
    }
    let parts = area.split_evenly((cells.len(), 1));
    for (g, part) in cells.iter().zip(parts.iter()) {
        one(part, g, s)?;
    }
    Ok(())
}

fn one<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, g: &CellGraph, s: Scale) -> Result<()> {
    let title_h = s.px(15.0);
    area.draw_text(
        &g.title,
        &TextStyle::from(s.font(LABEL_PT + 1.0)).color(&BLACK),
        (s.px(4.0) as i32, s.px(2.0) as i32),
    )
    .map_err(err)?;
    let (w, h) = area.dim_in_pixel();
    let body = area.margin(title_h, 0, 0, 0);
    let h = (h - title_h) as f64;
    let pos = positions(g, w as f64, h, s.px(16.0) as f64);
    let out = g.nodes + 2;
    let stroke = s.px(0.8);
    // Concatenation into the output: dashed grey.
    for &c in &g.concat {
        let (a, b) = (pos[c], pos[out]);
        body.draw(&PathElement::new(
            vec![(a.0 as i32, a.1 as i32), (b.0 as i32, b.1 as i32)],
            RGBColor(150, 150, 150).stroke_width(stroke),
        ))
        .map_err(err)?;
    }
    // Edges with their ops; parallel edges are bowed apart.
    let mut parallel: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (f, t, _) in &g.edges {
        *parallel.entry((*f, *t)).or_default() += 1;
    }
    let mut seen: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let label_style = TextStyle::from(s.font(LABEL_PT))
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    for (f, t, op) in &g.edges {
        let m = parallel[&(*f, *t)];
        let k = seen.entry((*f, *t)).or_default();
        let bow = (*k as f64 - (m as f64 - 1.0) / 2.0) * s.px(16.0) as f64;
        *k += 1;
        let (a, b) = (pos[*f], pos[*t]);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (nx, ny) = (-dy / len, dx / len);
        let mid = ((a.0 + b.0) / 2.0 + nx * bow, (a.1 + b.1) / 2.0 + ny * bow);
        let c = color(op_colour(op));
        let path: Vec<(i32, i32)> = (0..=16)
            .map(|i| {
                let u = i as f64 / 16.0;
                // Quadratic Bézier through `mid` (control point 2·mid − (a+b)/2).
                let cx = 2.0 * mid.0 - (a.0 + b.0) / 2.0;
                let cy = 2.0 * mid.1 - (a.1 + b.1) / 2.0;
                let x = (1.0 - u).powi(2) * a.0 + 2.0 * (1.0 - u) * u * cx + u * u * b.0;
                let y = (1.0 - u).powi(2) * a.1 + 2.0 * (1.0 - u) * u * cy + u * u * b.1;
                (x as i32, y as i32)
            })
            .collect();
        body.draw(&PathElement::new(path, c.stroke_width(stroke)))
            .map_err(err)?;
        let (tw, th) = body.estimate_text_size(op, &label_style).map_err(err)?;
        let (mx, my) = (mid.0 as i32, mid.1 as i32);
        let pad = s.px(1.0) as i32;
        body.draw(&Rectangle::new(
            [
                (mx - tw as i32 / 2 - pad, my - th as i32 / 2 - pad),
                (mx + tw as i32 / 2 + pad, my + th as i32 / 2 + pad),
            ],
            WHITE.mix(0.9).filled(),
        ))
        .map_err(err)?;
        body.draw_text(op, &label_style.color(&c), (mx, my))
            .map_err(err)?;
    }
    // Nodes on top.
    let r = s.px(11.0) as i32;
    let node_style = TextStyle::from(s.font(LABEL_PT))
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    for (i, p) in pos.iter().enumerate() {
        let fill = if i < 2 || i == out {
            RGBColor(220, 235, 245)
        } else {
            RGBColor(250, 240, 215)
        };
        let centre = (p.0 as i32, p.1 as i32);
        body.draw(&Circle::new(centre, r, fill.filled()))
            .map_err(err)?;
        body.draw(&Circle::new(centre, r, BLACK.stroke_width(stroke)))
            .map_err(err)?;
        body.draw_text(&node_name(i, g.nodes), &node_style, centre)
            .map_err(err)?;
    }
    Ok(())
}

/// A stable palette index per op family, so one op has one colour in every cell.
fn op_colour(op: &str) -> usize {
    match op {
        o if o.starts_with("sep_conv") => 0,
        o if o.starts_with("dil_conv") => 1,
        o if o.starts_with("skip") => 2,
        o if o.starts_with("max_pool") => 3,
        o if o.starts_with("avg_pool") => 4,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_sits_one_layer_after_its_deepest_input() {
        let g = CellGraph {
            title: String::new(),
            edges: vec![
                (0, 2, "a".into()),
                (1, 2, "b".into()),
                (2, 3, "c".into()),
                (0, 3, "d".into()),
                (0, 4, "e".into()),
                (1, 4, "f".into()),
                (3, 5, "g".into()),
                (4, 5, "h".into()),
            ],
            nodes: 4,
            concat: vec![2, 3, 4, 5],
        };
        assert_eq!(layers(&g), vec![0, 0, 1, 2, 1, 3, 4]);
    }

    #[test]
    fn edge_and_node_labels_are_at_least_ten_pixels_in_the_page_svg() {
        let g = CellGraph {
            title: "normal cell".into(),
            edges: vec![(0, 2, "sep_conv_3x3".into()), (1, 2, "skip_connect".into())],
            nodes: 1,
            concat: vec![2],
        };
        let (w, h) = super::super::style::pixels(super::super::style::PAGE_IN, 0.6, 96.0);
        crate::report::font::register();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            draw(&root, &[g], Scale::SVG).unwrap();
        }
        // the font size (px) of every <text>, by its content
        let sizes: Vec<(String, f64)> = svg
            .split("<text")
            .skip(1)
            .map(|t| {
                let at = t.find("font-size=\"").unwrap() + "font-size=\"".len();
                let num: String = t[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let open = t.find('>').unwrap() + 1;
                let text = t[open..t.find("</text>").unwrap()].trim().to_owned();
                (text, num.parse().unwrap())
            })
            .collect();
        let size_of = |label: &str| {
            sizes
                .iter()
                .find(|(t, _)| t == label)
                .unwrap_or_else(|| panic!("no text {label} in {sizes:?}"))
                .1
        };
        for label in ["sep_conv_3x3", "skip_connect", "k-2", "k-1", "k"] {
            assert!(size_of(label) >= 10.0, "{label}: {} px", size_of(label));
        }
    }
}
