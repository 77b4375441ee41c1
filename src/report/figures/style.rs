//! Sizes, fonts and colours shared by every figure. Sizes are in points (1/72 inch) and scaled to
//! the output: SVG at 96 px per inch, PNG at 300 dpi for a 3.5-inch column or a 7-inch page width, so
//! that text has the same printed size in every file. Colours are the Okabe–Ito palette (distinct
//! under the common colour-vision deficiencies); heat maps use viridis.

use plotters::style::RGBColor;

use super::super::font::FAMILY;

/// Okabe & Ito (2008), "Color Universal Design": black first, then the seven colours.
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(230, 159, 0),   // orange
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(240, 228, 66),  // yellow
    RGBColor(0, 0, 0),       // black
];

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One output of a figure: its pixel width and the pixels per point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scale {
    pub px_per_pt: f64,
}

impl Scale {
    /// SVG: 96 px per inch.
    pub(crate) const SVG: Scale = Scale {
        px_per_pt: 96.0 / 72.0,
    };
    /// PNG at 300 dpi.
    pub(crate) const PRINT: Scale = Scale {
        px_per_pt: 300.0 / 72.0,
    };

    /// A length in points as pixels.
    pub(crate) fn px(self, pt: f64) -> u32 {
        (pt * self.px_per_pt).round().max(1.0) as u32
    }

    pub(crate) fn font(self, pt: f64) -> (&'static str, f64) {
        (FAMILY, pt * self.px_per_pt)
    }
}

/// Width in inches of the outputs: the SVG and the page-width PNG are 7 in, the column PNG 3.5 in.
pub(crate) const PAGE_IN: f64 = 7.0;
pub(crate) const COLUMN_IN: f64 = 3.5;
pub(crate) const DPI: f64 = 300.0;

/// Pixel size of an output `width_in` wide with `aspect` = height / width.
pub(crate) fn pixels(width_in: f64, aspect: f64, px_per_in: f64) -> (u32, u32) {
    let w = (width_in * px_per_in).round() as u32;
    let h = (width_in * aspect * px_per_in).round() as u32;
    (w, h)
}

/// Viridis, sampled at eight points and interpolated linearly (0 = dark purple, 1 = yellow).
pub(crate) fn viridis(v: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 8] = [
        (68, 1, 84),
        (70, 50, 127),
        (54, 92, 141),
        (39, 127, 142),
        (31, 161, 135),
        (74, 194, 109),
        (159, 218, 58),
        (253, 231, 37),
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = v * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f64;
    let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_sizes_are_300_dpi_at_column_and_page_width() {
        assert_eq!(pixels(COLUMN_IN, 0.75, DPI), (1050, 788));
        assert_eq!(pixels(PAGE_IN, 0.5, DPI), (2100, 1050));
        assert_eq!(Scale::PRINT.px(72.0), 300);
    }

    #[test]
    fn viridis_runs_from_purple_to_yellow() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(f64::NAN), RGBColor(68, 1, 84));
    }
}
