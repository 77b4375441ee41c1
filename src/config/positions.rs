//! Where each field of a YAML file is: a map from field path to (line, column), read with
//! serde-saphyr's `Spanned`, so that an error found after parsing (a range check, a mismatch between
//! sections) still points at the line the user has to edit.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::path::FieldPath;

/// Line and column, 1-based, as editors show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub col: u64,
}

#[derive(Debug, Default)]
pub struct Positions(BTreeMap<FieldPath, Pos>);

impl Positions {
    /// Best effort: a file that does not parse has no positions (its parse error has its own).
    pub fn of_yaml(text: &str) -> Positions {
        let mut out = Positions::default();
        // Non-finite numbers (`.nan`) must still have positions: they are reported by field.
        let mut options = serde_saphyr::Options::default();
        options.non_finite_float_policy = serde_saphyr::options::NonFiniteFloatPolicy::PassThrough;
        if let Ok(root) = serde_saphyr::from_str_with_options::<Spanned<Node>>(text, options) {
            out.walk(&FieldPath::root(), &root);
        }
        out
    }

    fn walk(&mut self, at: &FieldPath, node: &Spanned<Node>) {
        let loc = node.referenced;
        if loc.line() > 0 {
            self.0.insert(
                at.clone(),
                Pos {
                    line: loc.line(),
                    col: loc.column(),
                },
            );
        }
        match &node.value {
            Node::Map(entries) => {
                for (k, v) in entries {
                    self.walk(&at.child(k), v);
                }
            }
            Node::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.walk(&at.index(i), v);
                }
            }
            Node::Leaf => {}
        }
    }

    /// The position of `path`, or of its nearest ancestor that the file spells out.
    pub fn find(&self, path: &FieldPath) -> Option<(Pos, bool)> {
        let mut p = Some(path.clone());
        let mut exact = true;
        while let Some(cur) = p {
            if let Some(pos) = self.0.get(&cur) {
                if !cur.is_root() || exact {
                    return Some((*pos, exact));
                }
                return Some((*pos, false));
            }
            exact = false;
            p = cur.parent();
        }
        None
    }

    pub fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains_key(path)
    }
}

/// A YAML node with only its structure kept.
enum Node {
    Map(Vec<(String, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Leaf,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// A mapping key of any scalar type, kept as text (read here and by `yaml.rs`'s walk).
pub(super) struct KeyText(pub(super) String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a plain key (a word such as `name`)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Spanned<Node>>()? {
            items.push(v);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<KeyText>()? {
            let v = map.next_value::<Spanned<Node>>()?;
            entries.push((k.0, v));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_and_list_items_have_their_line_and_column() {
        let yaml = "name: x\nsearch:\n  objective:\n    lambda: 0.5\nseeds:\n  search: [0, 7]\n";
        let p = Positions::of_yaml(yaml);
        let (pos, exact) = p
            .find(&FieldPath::parse("search.objective.lambda").unwrap())
            .unwrap();
        assert!(exact);
        assert_eq!(pos, Pos { line: 4, col: 13 });
        let (pos, _) = p
            .find(&FieldPath::parse("seeds.search[1]").unwrap())
            .unwrap();
        assert_eq!(pos.line, 6);
        assert!(
            pos.col > 12,
            "second list item is right of the first: {pos:?}"
        );
    }

    #[test]
    fn a_missing_field_falls_back_to_its_section() {
        let yaml = "name: x\nsearch:\n  batch: 3\n";
        let p = Positions::of_yaml(yaml);
        let (pos, exact) = p
            .find(&FieldPath::parse("search.temperature").unwrap())
            .unwrap();
        assert!(!exact);
        assert_eq!(
            pos.line, 3,
            "section `search` starts at its first entry: {pos:?}"
        );
    }
}
