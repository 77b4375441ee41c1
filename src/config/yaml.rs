//! Reading YAML the user wrote: the file checks (size, type, encoding) and serde-saphyr errors turned
//! into [`ConfigError`]s with file:line:col, the field, and a message in the user's terms. A leaf of
//! `config/`: it knows nothing of experiments, tiers or validation.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::{with_did_you_mean, ConfigError, ConfigIssue};
use super::path::{FieldPath, Seg};
use super::positions::{KeyText, Pos};

/// Experiment files are small; anything larger is almost certainly the wrong file.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads the file, refusing what cannot be an experiment (a folder, a huge file, binary data).
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let src = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| {
        let msg = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "no such file (check the path; experiments live in experiments/)".to_owned()
            }
            _ => format!("cannot read: {e}"),
        };
        ConfigError::single(&src, msg)
    })?;
    if meta.is_dir() {
        return Err(ConfigError::single(
            &src,
            "is a directory; give an experiment file, e.g. experiments/paper/c10-darts-unas.yaml (a shell glob `dir/*.yaml` validates a folder)",
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError::single(
            &src,
            format!(
                "is {:.1} MB; an experiment file is at most {} KiB — is this the right file?",
                meta.len() as f64 / 1e6,
                MAX_FILE_BYTES / 1024
            ),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| ConfigError::single(&src, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::single(
            &src,
            format!(
                "is not UTF-8 text (invalid byte at offset {}); an experiment is a YAML file",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// One issue as an error.
pub fn one(
    source: &str,
    pos: Option<Pos>,
    field: Option<FieldPath>,
    message: String,
) -> ConfigError {
    ConfigError {
        issues: vec![ConfigIssue {
            source: source.to_owned(),
            pos,
            field,
            message,
        }],
    }
}

/// Turns a serde-saphyr error into an issue with position, field and a did-you-mean.
pub fn saphyr_error(src: &str, e: &serde_saphyr::Error, field: Option<FieldPath>) -> ConfigError {
    let pos = e.location().filter(|l| l.line() > 0).map(|l| Pos {
        line: l.line(),
        col: l.column(),
    });
    let message =
        user_message(e).unwrap_or_else(|| clean_message(&e.without_snippet().to_string()));
    one(
        src,
        pos,
        field.filter(|f| !f.is_root()),
        with_did_you_mean(&message),
    )
}

/// serde-saphyr appends " at line N column M" to its messages; the location is printed up front.
pub fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let cut = first
        .rfind(" at line ")
        .map(|i| &first[..i])
        .unwrap_or(first);
    let msg = cut.trim_start_matches("error: ");
    // Library-internal advice does not help someone editing a YAML file.
    let msg = msg.split(", set DuplicateKeyPolicy").next().unwrap_or(msg);
    let msg = msg.split("; use Option<").next().unwrap_or(msg);
    if msg.starts_with("budget breached") {
        return "the anchors and aliases (`&a`, `*a`) of this file expand to more YAML than an experiment can be; write the values out instead".to_owned();
    }
    match msg {
        "expected mapping start" => {
            "expected a mapping (a section of `key: value` entries), found a single value or a list"
                .to_owned()
        }
        "expected sequence start" => {
            "expected a list (`[a, b]`, or one `- a` line per item)".to_owned()
        }
        "invalid u32" => "expected a whole number ≥ 0 (at most 4294967295)".to_owned(),
        "invalid u64" => "expected a whole number ≥ 0".to_owned(),
        "invalid floating point" => "expected a number".to_owned(),
        "cannot deserialize null into string" => "expected a text value, found nothing".to_owned(),
        m => m.to_owned(),
    }
}

/// The options user-written YAML is read with: duplicate keys are errors (serde-saphyr's default), a
/// tag serde-saphyr does not know (`!weird 0.4`) is an error instead of being dropped, a tag on a key
/// is an error, and `.nan` / `.inf` are refused wherever the target type is not fixed.
pub fn strict_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.reject_unsupported_tags = true;
    o.reject_tagged_field_names = true;
    o.non_finite_float_policy = serde_saphyr::options::NonFiniteFloatPolicy::Reject;
    o
}

/// What a YAML node is, as a user would name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Mapping,
    List,
    Value,
    Nothing,
}

/// What [`check_structure`] learnt of a document that is well-formed.
#[derive(Debug)]
pub struct Structure {
    /// Keys written without a value (`lr:` or `lr: null`), in file order.
    pub nulls: Vec<FieldPath>,
}

/// One pass over the whole document before it meets the schema, so that what is wrong with the YAML
/// itself is reported as such, with the field it is in: syntax (an unclosed `{` would otherwise show
/// up as a wrong type of whatever key the parser swallowed), unknown tags, duplicate keys, non-finite
/// numbers (`.nan`, `.inf`, `-.inf`: a float field would otherwise take them, and the JSON step of
/// the tier overlay would turn them into "absent", i.e. the default) and more than one document.
pub fn check_structure(src: &str, text: &str) -> Result<Structure, ConfigError> {
    let (top, nulls) = walk(text).map_err(|b| {
        let (e, field) = *b;
        let mut err = saphyr_error(src, &e, Some(field.clone()));
        let issue = &mut err.issues[0];
        if field.is_root() {
            issue.field = Some(field.clone());
        }
        if let Some((opened, msg)) = unclosed_flow(text, issue.pos, &field, &issue.message) {
            issue.pos = Some(opened);
            issue.message = msg;
        }
        err
    })?;
    if top != NodeKind::Mapping {
        let found = match top {
            NodeKind::List => "a list",
            NodeKind::Value => "a single value",
            NodeKind::Nothing | NodeKind::Mapping => "nothing",
        };
        return Err(one(
            src,
            first_content(text),
            Some(FieldPath::root()),
            format!("must be a mapping of sections (`name: …`, `dataset: …`, `space: …`, `seeds: …`, and `search: …` and/or `train: …`), found {found}"),
        ));
    }
    Ok(Structure { nulls })
}

/// Where in `text` reading it fails (the field a non-finite number or a bad tag is in), if it does.
pub fn path_of_error(text: &str) -> Option<FieldPath> {
    walk(text).err().map(|b| b.1)
}

/// Reads the whole document, keeping the path of the node being read: on an error, the path of the
/// node at fault (for a duplicate key, the key itself).
#[allow(clippy::type_complexity)]
fn walk(text: &str) -> Result<(NodeKind, Vec<FieldPath>), Box<(serde_saphyr::Error, FieldPath)>> {
    let path = RefCell::new(Vec::new());
    let nulls = RefCell::new(Vec::new());
    let walked =
        serde_saphyr::with_deserializer_from_str_with_options(text, strict_options(), |de| {
            Walk {
                path: &path,
                nulls: &nulls,
            }
            .deserialize(de)
        });
    match walked {
        Ok(top) => Ok((top, nulls.into_inner())),
        Err(e) => {
            let mut field = FieldPath(path.into_inner());
            if let serde_saphyr::Error::DuplicateMappingKey { key: Some(k), .. } =
                e.without_snippet()
            {
                field = field.child(k);
            }
            Err(Box::new((e, field)))
        }
    }
}

/// The parser reports an unclosed `{` or `[` where it gives up (often the end of the file, after it
/// has read the next lines as part of the mapping); say which bracket is open and where.
fn unclosed_flow(
    text: &str,
    at: Option<Pos>,
    field: &FieldPath,
    raw: &str,
) -> Option<(Pos, String)> {
    let (open, close, what) = if raw.contains("while parsing a flow mapping") {
        ('{', '}', "mapping")
    } else if raw.contains("while parsing a flow sequence") {
        ('[', ']', "list")
    } else {
        return None;
    };
    let at = at?;
    // Brackets still open where the parser stopped (quoted text and comments skipped).
    let mut stack: Vec<(char, Pos)> = Vec::new();
    'lines: for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line_no > at.line {
            break;
        }
        let mut quote = None;
        for (j, c) in line.chars().enumerate() {
            let col = j as u64 + 1;
            if line_no == at.line && col >= at.col {
                break 'lines;
            }
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => continue 'lines,
                (None, '{' | '[') => stack.push((c, Pos { line: line_no, col })),
                (None, '}' | ']') => {
                    stack.pop();
                }
                _ => {}
            }
        }
    }
    let (_, opened) = stack.into_iter().rev().find(|(c, _)| *c == open)?;
    let of = if field.is_root() {
        String::new()
    } else {
        format!(" (the {what} of `{field}`)")
    };
    let message = format!(
        "this `{open}`{of} is never closed: the parser read on to line {} column {} without finding its `{close}`; add the missing `{close}`, or a `,` between two entries",
        at.line, at.col
    );
    Some((opened, message))
}

/// Where the first line that is not blank or a comment starts.
fn first_content(text: &str) -> Option<Pos> {
    text.lines().enumerate().find_map(|(i, l)| {
        let t = l.trim_start();
        (!t.is_empty() && !t.starts_with('#')).then(|| Pos {
            line: i as u64 + 1,
            col: (l.len() - t.len()) as u64 + 1,
        })
    })
}

/// A visitor that walks any node and keeps the path it is at (left in place when an error returns).
struct Walk<'a> {
    path: &'a RefCell<Vec<Seg>>,
    nulls: &'a RefCell<Vec<FieldPath>>,
}

impl Walk<'_> {
    fn again(&self) -> Self {
        Walk {
            path: self.path,
            nulls: self.nulls,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = NodeKind;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = NodeKind;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Value)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Value)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NodeKind, E> {
        Ok(NodeKind::Value)
    }
    fn visit_i128<E>(self, _: i128) -> Result<NodeKind, E> {
        Ok(NodeKind::Value)
    }
    fn visit_u128<E>(self, _: u128) -> Result<NodeKind, E> {
        Ok(NodeKind::Value)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Value)
    }
    fn visit_str<E>(self, _: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Value)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<NodeKind, E> {
        Ok(NodeKind::Value)
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        self.nulls
            .borrow_mut()
            .push(FieldPath(self.path.borrow().clone()));
        Ok(NodeKind::Nothing)
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut i = 0;
        loop {
            self.path.borrow_mut().push(Seg::Index(i));
            let more = seq.next_element_seed(self.again())?.is_some();
            self.path.borrow_mut().pop();
            if !more {
                return Ok(NodeKind::List);
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        while let Some(KeyText(k)) = map.next_key::<KeyText>()? {
            self.path.borrow_mut().push(Seg::Key(k));
            map.next_value_seed(self.again())?;
            self.path.borrow_mut().pop();
        }
        Ok(NodeKind::Mapping)
    }
}

/// What serde-saphyr's error means for someone editing the file, where its own words are about its API.
fn user_message(e: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::Error as E;
    Some(match e.without_snippet() {
        E::MultipleDocuments { .. } => "a second YAML document starts here (a `---` line); an experiment file holds one document — put each experiment in its own file".to_owned(),
        E::UnsupportedTag { tag, .. } => format!("unknown YAML tag `{tag}`; experiment files use plain values — remove the tag"),
        E::TaggedStructFieldName { tag, .. } => format!("a key cannot carry a tag (`{tag}`); remove it"),
        E::NonFiniteFloat { value, .. } => format!("must be a finite number, got `{value}` (infinite or not a number); write a number such as 0.05, or quote it if you mean text"),
        E::DuplicateMappingKey { key: Some(k), .. } => format!("duplicate mapping key: `{k}` is written twice in the same section; keep one"),
        E::DuplicateMappingKey { key: None, .. } => "duplicate mapping key: a key is written twice in the same section; keep one".to_owned(),
        _ => return None,
    })
}
