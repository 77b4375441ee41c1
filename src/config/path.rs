//! A field path inside an experiment (`search.objective.lambda`, `seeds.search[0]`): how errors name a
//! field, how `--set` addresses one, and how a validation error finds its line in the file.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Parses the dotted form used by `--set` (`a.b.c`, `seeds.search[1]`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut segs = Vec::new();
        if s.is_empty() {
            return Err("empty field path".into());
        }
        for part in s.split('.') {
            let (key, rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if key.is_empty() {
                return Err(format!("empty key in field path `{s}`"));
            }
            segs.push(Seg::Key(key.to_owned()));
            let mut rest = rest;
            while let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| format!("unclosed `[` in field path `{s}`"))?;
                let idx = r[..end].parse::<usize>().map_err(|_| {
                    format!("index `{}` in field path `{s}` is not a number", &r[..end])
                })?;
                segs.push(Seg::Index(idx));
                rest = &r[end + 1..];
            }
            if !rest.is_empty() {
                return Err(format!("unexpected `{rest}` in field path `{s}`"));
            }
        }
        Ok(FieldPath(segs))
    }

    pub fn child(&self, key: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_owned()));
        FieldPath(v)
    }

    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        FieldPath(v)
    }

    pub fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            None
        } else {
            Some(FieldPath(self.0[..self.0.len() - 1].to_vec()))
        }
    }

    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Converts serde_path_to_error's path into ours.
    pub fn from_serde(p: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let mut segs = Vec::new();
        for s in p.iter() {
            match s {
                Segment::Seq { index } => segs.push(Seg::Index(*index)),
                Segment::Map { key } => segs.push(Seg::Key(key.clone())),
                Segment::Enum { variant } => segs.push(Seg::Key(variant.clone())),
                Segment::Unknown => {}
            }
        }
        FieldPath(segs)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_round_trip_through_display() {
        for s in [
            "search.objective.lambda",
            "seeds.search[1]",
            "a[0][2].b",
            "name",
        ] {
            assert_eq!(FieldPath::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn malformed_paths_are_rejected_with_a_reason() {
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("a[x]")
            .unwrap_err()
            .contains("not a number"));
        assert!(FieldPath::parse("a[1").unwrap_err().contains("unclosed"));
    }
}
