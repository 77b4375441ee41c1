//! Experiment file → resolved config: read (size and type checks), parse into the typed schema
//! (serde-saphyr: duplicate keys are errors, positions on every error), apply the tier overlay and the
//! `--set` overrides, fill recipe defaults, validate ranges, compute the id. Every failure is a
//! [`ConfigError`] that says where and what to change; nothing here writes anything.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{with_did_you_mean, ConfigError, ConfigIssue};
use super::identity;
use super::path::{FieldPath, Seg};
use super::positions::Positions;
use super::schema::Experiment;
use super::tier::Tier;
use super::tiers::{self, Tiers};
use super::validate;
use super::yaml::{check_structure, one, path_of_error, saphyr_error, strict_options};

// The file checks live in the `yaml` leaf; re-exported here, where callers have always found them.
pub use super::yaml::read_text;

/// An experiment after tier, overrides and recipe defaults: what a run actually executes.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub experiment: Experiment,
    pub tier: Tier,
    pub source: PathBuf,
    pub overrides: Vec<String>,
    /// blake3 of the canonical serialisation (see [`identity`]).
    pub id: String,
}

impl Resolved {
    /// The resolved experiment as YAML, with the tier and overrides that made it, as a comment header.
    pub fn to_yaml(&self) -> String {
        let body = serde_saphyr::to_string(&self.experiment).unwrap_or_else(|e| format!("# {e}\n"));
        let mut head = format!(
            "# resolved from {} (tier {})\n# id {}\n",
            self.source.display(),
            self.tier,
            self.id
        );
        for o in &self.overrides {
            head.push_str(&format!("# --set {o}\n"));
        }
        head + &body
    }
}

/// Reads, resolves and validates one experiment file.
pub fn load(path: &Path, tier: Tier, sets: &[String]) -> Result<Resolved, ConfigError> {
    let src = path.display().to_string();
    let text = read_text(path)?;
    let experiment = parse_checked(&src, &text, true)?;
    let tiers = Tiers::for_experiment(path)?;
    resolve(&src, &text, experiment, tier, &tiers, sets)
}

/// Resolves an already parsed experiment (exposed for tests and for `reproduce`).
pub fn resolve(
    src: &str,
    text: &str,
    experiment: Experiment,
    tier: Tier,
    tiers: &Tiers,
    sets: &[String],
) -> Result<Resolved, ConfigError> {
    let positions = Positions::of_yaml(text);
    let mut value = finite_json(src, &positions, &experiment)?;

    // Tier overlay.
    let mut from_tier = Vec::new();
    let tier_source = format!("{} (tier {tier})", tiers.source);
    let space = value["space"]["name"].as_str().map(str::to_owned);
    let space_overlay = space.as_deref().and_then(|s| tiers.space_overlay(tier, s));
    for overlay in [tiers.overlay(tier), space_overlay].into_iter().flatten() {
        tiers::merge(&mut value, overlay, &FieldPath::root(), &mut from_tier);
        from_json(value.clone()).map_err(|(field, msg)| {
            let pos = tiers.position_of(tier, space.as_deref(), &field);
            one(&tier_source, pos, Some(field), msg)
        })?;
    }

    // --set overrides, in order; each is checked on its own so the error names the one at fault.
    let mut from_set: Vec<(FieldPath, String)> = Vec::new();
    // every field a --set spells out, nested ones of a section value included
    let mut set_fields: Vec<FieldPath> = Vec::new();
    for s in sets {
        let (field, v) = parse_set(s)?;
        leaves(&v, &field, &mut set_fields);
        set_path(&mut value, &field, v)
            .map_err(|m| one(&format!("--set {s}"), None, Some(field.clone()), m))?;
        from_json(value.clone())
            .map_err(|(f, msg)| one(&format!("--set {s}"), None, Some(f), msg))?;
        from_set.push((field, s.clone()));
    }

    let mut resolved = from_json(value).map_err(|(f, m)| one(src, None, Some(f), m))?;
    if let Some(train) = &resolved.train {
        resolved.train = Some(train.resolved());
    }
    if let Some(search) = &resolved.search {
        // the supernet's settings: a training-only experiment has none to fill in
        resolved.space = resolved.space.resolved(&resolved.dataset);
        resolved.search = Some(search.resolved());
    }

    let mut problems = validate::validate(&resolved);
    // A value the user wrote (in the file or a --set) that nothing reads would silently not apply.
    let written = |f: &FieldPath| positions.contains(f) || set_fields.contains(f);
    problems.extend(validate::without_effect(&resolved, &written));
    if !problems.is_empty() {
        let blame = Blame {
            src,
            positions: &positions,
            from_set: &from_set,
            from_tier: &from_tier,
            tiers,
            tier,
            tier_source: &tier_source,
            space: space.as_deref(),
        };
        let issues = problems.into_iter().map(|p| blame.locate(p)).collect();
        return Err(ConfigError { issues });
    }

    let id = identity::config_id(&resolved, tier);
    Ok(Resolved {
        experiment: resolved,
        tier,
        source: PathBuf::from(src),
        overrides: sets.to_vec(),
        id,
    })
}

/// Where a validation problem comes from: the last `--set` that touched the field, else the tier
/// overlay that set it (its value is the one in force, even where the file spells the field), else
/// the file.
struct Blame<'a> {
    src: &'a str,
    positions: &'a Positions,
    from_set: &'a [(FieldPath, String)],
    from_tier: &'a [FieldPath],
    tiers: &'a Tiers,
    tier: Tier,
    tier_source: &'a str,
    space: Option<&'a str>,
}

impl Blame<'_> {
    fn locate(&self, (field, message): (FieldPath, String)) -> ConfigIssue {
        let by_set = self
            .from_set
            .iter()
            .rev()
            .find(|(f, _)| field.starts_with(f) || f.starts_with(&field));
        let (source, pos) = if let Some((_, s)) = by_set {
            (format!("--set {s}"), None)
        } else if self.from_tier.iter().any(|f| field.starts_with(f)) {
            // the tier's value replaced whatever the file says on its line
            let pos = self.tiers.position_of(self.tier, self.space, &field);
            (self.tier_source.to_owned(), pos)
        } else {
            let pos = self.positions.find(&field).map(|(p, _)| p);
            (self.src.to_owned(), pos)
        };
        ConfigIssue {
            source,
            pos,
            field: Some(field),
            message,
        }
    }
}

/// Parses YAML text into the typed schema, with file:line:col and the field path on any error.
pub fn parse_experiment(src: &str, text: &str) -> Result<Experiment, ConfigError> {
    parse_checked(src, text, false)
}

/// [`parse_experiment`]; with `user_file`, a key without a value is an error too (a resolved config
/// written back has `null` for absent sections, a file the user wrote never needs one).
pub(super) fn parse_checked(
    src: &str,
    text: &str,
    user_file: bool,
) -> Result<Experiment, ConfigError> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(ConfigError::single(
            src,
            "is empty; an experiment needs at least `name`, `dataset`, `space`, `seeds` and a `search` or `train` section (see experiments/examples/)",
        ));
    }
    // Syntax, tags, duplicate keys, non-finite numbers and the top-level shape, before the schema.
    let structure = check_structure(src, text)?;
    if user_file {
        refuse_nulls(src, text, &structure.nulls)?;
    }
    let mut field_path = None;
    let result =
        serde_saphyr::with_deserializer_from_str_with_options(text, strict_options(), |de| {
            let mut track = serde_path_to_error::Track::new();
            let pde = serde_path_to_error::Deserializer::new(de, &mut track);
            let r = <Experiment as serde::Deserialize>::deserialize(pde);
            if r.is_err() {
                field_path = Some(FieldPath::from_serde(&track.path()));
            }
            r
        });
    let experiment = result.map_err(|e| {
        let mut err = saphyr_error(src, &e, field_path.clone());
        name_the_missing_field(&mut err, text, field_path.unwrap_or_else(FieldPath::root));
        let issue = &mut err.issues[0];
        if issue.field.is_none() && issue.pos.is_some() {
            // an error in the top-level mapping itself (e.g. a key without a name)
            issue.field = Some(FieldPath::root());
        }
        err
    })?;
    Ok(experiment)
}

/// serde says "missing field `space`" about the section that lacks it; the user needs the field's
/// full path and the line where the section starts.
fn name_the_missing_field(err: &mut ConfigError, text: &str, section: FieldPath) {
    let issue = &mut err.issues[0];
    let Some(name) = issue
        .message
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_owned)
    else {
        return;
    };
    let example = match name.as_str() {
        "name" => " (e.g. `name: my-experiment`; it names the run folder)",
        "dataset" => " (e.g. `dataset: {name: cifar10}`)",
        "space" => " (e.g. `space: {name: darts}`)",
        "seeds" => " (e.g. `seeds: {search: [0], train: [0]}`)",
        "estimator" => " (one of gsm, st_gsm, darts, reinforce, rebar, relax)",
        "objective" => " (e.g. `objective: {kind: gengap}`)",
        "epochs" => " (e.g. `epochs: {warmup: 15, search: 85}`)",
        "recipe" => " (one of cifar, imagenet_darts, imagenet_proxyless)",
        _ => "",
    };
    let where_ = if section.is_root() {
        "the experiment".to_owned()
    } else {
        format!("section `{section}`")
    };
    issue.message = format!("missing field `{name}`, which {where_} requires{example}");
    let positions = Positions::of_yaml(text);
    issue.pos = positions.find(&section).map(|(p, _)| p).or(issue.pos);
    issue.field = Some(section.child(&name));
}

/// `lr:` with nothing after it (or `lr: null`) would silently take the default; say so instead.
fn refuse_nulls(src: &str, text: &str, nulls: &[FieldPath]) -> Result<(), ConfigError> {
    if nulls.is_empty() {
        return Ok(());
    }
    let positions = Positions::of_yaml(text);
    let issues = nulls
        .iter()
        .map(|f| ConfigIssue {
            source: src.to_owned(),
            pos: positions.find(f).map(|(p, _)| p),
            field: Some(f.clone()),
            message: "has no value (`key:` with nothing after it, or `null`); write a value, or delete the key to take the default".into(),
        })
        .collect();
    Err(ConfigError { issues })
}

fn from_json(v: Value) -> Result<Experiment, (FieldPath, String)> {
    serde_path_to_error::deserialize::<_, Experiment>(v).map_err(|e| {
        let path = FieldPath::from_serde(e.path());
        (path, with_did_you_mean(&e.into_inner().to_string()))
    })
}

/// `a.b=value`: the value is read as YAML, so `3`, `0.5`, `true`, `[0, 1]` and `{warmup: 1}` are typed.
pub fn parse_set(s: &str) -> Result<(FieldPath, Value), ConfigError> {
    let src = format!("--set {s}");
    let (k, v) = s.split_once('=').ok_or_else(|| {
        ConfigError::single(&src, "expected `field.path=value`, e.g. `search.batch=64`")
    })?;
    let field = FieldPath::parse(k.trim()).map_err(|m| ConfigError::single(&src, m))?;
    if v.trim().is_empty() {
        return Err(one(
            &src,
            None,
            Some(field),
            "no value after `=`; write one, e.g. `search.batch=64` (leave the --set out to keep the file's value)".into(),
        ));
    }
    let value: Value = serde_saphyr::from_str_with_options(v, strict_options()).map_err(|e| {
        let mut err = saphyr_error(&src, &e, None);
        let issue = &mut err.issues[0];
        issue.pos = None;
        issue.field = Some(field.clone());
        if let Some(inner) = path_of_error(v) {
            // e.g. a non-finite number inside a mapping or list value: name the field inside it
            issue.field = Some(FieldPath(field.0.iter().cloned().chain(inner.0).collect()));
        }
        if !issue.message.starts_with("must be") {
            issue.message = format!("value `{v}` is not valid YAML: {}", issue.message);
        }
        err
    })?;
    Ok((field, value))
}

/// `experiment` as JSON, refusing a non-finite number (JSON has none: it would come back as "absent",
/// i.e. the default).
fn finite_json(
    src: &str,
    positions: &Positions,
    experiment: &Experiment,
) -> Result<Value, ConfigError> {
    // An experiment built in code can hold a non-finite number that no text pass has seen.
    if let Some(field) = non_finite_field(experiment) {
        let pos = positions.find(&field).map(|(p, _)| p);
        return Err(one(src, pos, Some(field), "must be a finite number".into()));
    }
    let value = serde_json::to_value(experiment)
        .map_err(|e| ConfigError::single(src, format!("internal: cannot serialise: {e}")))?;
    if let Err((field, msg)) = from_json(value.clone()) {
        let pos = positions.find(&field).map(|(p, _)| p);
        let msg = if msg.contains("null") {
            "must be a finite number, got .nan or .inf".to_owned()
        } else {
            msg
        };
        return Err(one(src, pos, Some(field), msg));
    }
    Ok(value)
}

/// The first field of `e` that holds NaN or an infinity (its YAML form spells them `.nan` / `.inf`,
/// which the strict reading refuses with the field's path).
fn non_finite_field(e: &Experiment) -> Option<FieldPath> {
    let yaml = serde_saphyr::to_string(e).ok()?;
    path_of_error(&yaml)
}

/// `at` and, for a mapping value, every field inside it.
fn leaves(v: &Value, at: &FieldPath, out: &mut Vec<FieldPath>) {
    out.push(at.clone());
    if let Value::Object(m) = v {
        for (k, x) in m {
            leaves(x, &at.child(k), out);
        }
    }
}

/// `--set train.lr=null` would silently put the default in place of the file's value.
fn refuse_unsetting(old: Option<&Value>, new: &Value) -> Result<(), String> {
    let old_is_a_value = !matches!(old, Some(Value::Object(_)) | Some(Value::Null) | None);
    if new.is_null() && old_is_a_value {
        return Err(
            "`null` has no value: give one (leave the --set out to keep the file's value)".into(),
        );
    }
    Ok(())
}

fn set_path(root: &mut Value, field: &FieldPath, v: Value) -> Result<(), String> {
    let mut cur = root;
    for (i, seg) in field.0.iter().enumerate() {
        let last = i + 1 == field.0.len();
        match seg {
            Seg::Key(k) => {
                if cur.is_null() {
                    *cur = Value::Object(Default::default());
                }
                let obj = cur.as_object_mut().ok_or_else(|| {
                    format!(
                        "`{}` is not a section, cannot set `{k}` in it",
                        FieldPath(field.0[..i].to_vec())
                    )
                })?;
                if last {
                    refuse_unsetting(obj.get(k), &v)?;
                    obj.insert(k.clone(), v);
                    return Ok(());
                }
                cur = obj.entry(k.clone()).or_insert(Value::Null);
            }
            Seg::Index(n) => {
                let arr = cur.as_array_mut().ok_or_else(|| {
                    format!("`{}` is not a list", FieldPath(field.0[..i].to_vec()))
                })?;
                let len = arr.len();
                let slot = arr.get_mut(*n).ok_or_else(|| {
                    format!("index {n} is out of range (the list has {len} items)")
                })?;
                if last {
                    refuse_unsetting(Some(slot), &v)?;
                    *slot = v;
                    return Ok(());
                }
                cur = slot;
            }
        }
    }
    *cur = v;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name: t\ndataset: {name: synthetic}\nspace: {name: darts, layers: 3, channels: 4}\ntrain: {recipe: cifar, genotype: UNAS_CIFAR10, lr: 0.1}\nseeds: {search: [0], train: [0]}\n";

    #[test]
    fn a_non_finite_number_set_in_code_is_refused_not_replaced_by_the_default() {
        let tiers = Tiers::parse("tiers.yaml", tiers::EMBEDDED_TIERS).unwrap();
        let ok = parse_experiment("x.yaml", BASE).unwrap();
        assert!(resolve("x.yaml", BASE, ok.clone(), Tier::Paper, &tiers, &[]).is_ok());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut e = ok.clone();
            e.train.as_mut().unwrap().lr = Some(bad);
            let err = resolve("x.yaml", BASE, e, Tier::Paper, &tiers, &[]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("x.yaml:4:"), "{msg}");
            assert!(
                msg.contains("field `train.lr`: must be a finite number"),
                "{msg}"
            );
            let mut e = ok.clone();
            e.space.width_multiplier = bad;
            let msg = resolve("x.yaml", BASE, e, Tier::Paper, &tiers, &[])
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("field `space.width_multiplier`: must be a finite number"),
                "{msg}"
            );
        }
    }
}
