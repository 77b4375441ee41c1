//! `train.channels`: the initial width C of the trained network, a number or the recipe's automatic
//! choice.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The initial channels C of a trained network.
///
/// A file writes `auto` or `0` for [`Width::Auto`] and a whole number for [`Width::Fixed`]. `Auto` is
/// serialised as `0`, the spelling every run id was computed from, so resolved configs and ids of the
/// existing runs stay as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// The recipe chooses: ImageNet-DARTS takes the largest even C in [30, 70) whose network stays
    /// under `train.max_macs_m` (spec §6.2); the ProxylessNAS network has its fixed skeleton widths.
    Auto,
    /// C channels (≥ 1; a file's `0` reads as `Auto`).
    Fixed(u32),
}

impl Width {
    /// The number a file and a resolved config write: C, or 0 for `Auto`.
    pub fn written(self) -> u32 {
        match self {
            Width::Auto => 0,
            Width::Fixed(c) => c,
        }
    }

    /// The width a file's number means: 0 is `Auto`.
    pub fn of_written(c: u32) -> Width {
        match c {
            0 => Width::Auto,
            c => Width::Fixed(c),
        }
    }
}

impl fmt::Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Width::Auto => f.write_str("auto"),
            Width::Fixed(c) => write!(f, "{c}"),
        }
    }
}

impl Serialize for Width {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.written())
    }
}

/// What a file may write: `auto`, or a whole number of channels that fits a `u32`.
const EXPECTED: &str = "`auto` or a whole number of channels (0 = auto)";

struct WidthVisitor;

impl Visitor<'_> for WidthVisitor {
    type Value = Width;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Width, E> {
        u32::try_from(v)
            .map(Width::of_written)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Width, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Width, E> {
        Err(E::invalid_type(de::Unexpected::Float(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Width, E> {
        match v {
            "auto" => Ok(Width::Auto),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Width, E> {
        Err(E::invalid_type(de::Unexpected::Bool(v), &self))
    }
}

impl<'de> Deserialize<'de> for Width {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WidthVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> Result<Width, String> {
        let v: serde_json::Value = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn auto_and_zero_read_as_auto_and_numbers_as_fixed() {
        assert_eq!(read("auto"), Ok(Width::Auto));
        assert_eq!(read("0"), Ok(Width::Auto));
        assert_eq!(read("36"), Ok(Width::Fixed(36)));
    }

    #[test]
    fn auto_is_written_as_zero_so_run_ids_keep_their_spelling() {
        assert_eq!(serde_json::to_string(&Width::Auto).unwrap(), "0");
        assert_eq!(serde_json::to_string(&Width::Fixed(48)).unwrap(), "48");
        for w in [Width::Auto, Width::Fixed(1), Width::Fixed(512)] {
            let back: Width = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
            assert_eq!(back, w);
        }
    }

    #[test]
    fn every_other_value_is_refused_with_what_is_expected() {
        for bad in ["-2", "36.5", "wide", "true", "[36]", "4294967296"] {
            let err = read(bad).expect_err(bad);
            assert!(err.contains(EXPECTED), "{bad}: {err}");
        }
    }
}
