//! The one font of every figure: DejaVu Sans, bundled in `assets/fonts/` with its licence
//! (`DejaVuSans-LICENSE.txt`, Bitstream Vera licence + public-domain DejaVu changes) and compiled into
//! the binary, rasterised through ab_glyph. No fontconfig, no system font, at build or run time.

use std::sync::Once;

/// The font file's bytes.
pub(crate) const DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name figures ask for.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the bundled font with plotters (once per process).
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, DEJAVU_SANS)
            .is_err()
        {
            // The bytes are compiled in and tested below; this cannot happen with a good build.
            panic!("the bundled DejaVu Sans font does not parse");
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_font_parses_and_its_licence_is_beside_it() {
        assert!(ab_glyph::FontRef::try_from_slice(super::DEJAVU_SANS).is_ok());
        let licence = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/fonts/DejaVuSans-LICENSE.txt");
        let text = std::fs::read_to_string(licence).unwrap();
        assert!(text.contains("Bitstream"), "licence text");
    }
}
