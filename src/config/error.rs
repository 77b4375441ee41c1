//! Config errors the user can act on: where (file:line:col, or the `--set` / tier that caused it), which
//! field, what was expected, and a did-you-mean for a misspelt key or value. The CLI exits with code 2.

use std::fmt;

use super::path::FieldPath;
use super::positions::Pos;

/// One problem in an experiment, located as precisely as we can.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigIssue {
    /// The file (or `--set k=v`, or `tiers.yaml (tier smoke)`) the problem comes from.
    pub source: String,
    pub pos: Option<Pos>,
    pub field: Option<FieldPath>,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        f.write_str(": ")?;
        match &self.field {
            Some(field) if field.is_root() => f.write_str("top level: ")?,
            Some(field) => write!(f, "field `{field}`: ")?,
            None => {}
        }
        f.write_str(&self.message)
    }
}

/// Everything wrong with one experiment (validation reports all problems at once, not the first).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    pub fn single(source: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            issues: vec![ConfigIssue {
                source: source.into(),
                pos: None,
                field: None,
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// Adds "did you mean `x`?" to serde's "unknown field `y`, expected one of `a`, `b`" and
/// "unknown variant ..." messages, when one candidate is close to what was written.
pub fn with_did_you_mean(message: &str) -> String {
    let is_unknown = message.contains("unknown field") || message.contains("unknown variant");
    if !is_unknown {
        return message.to_owned();
    }
    // "unknown field `x`, expected one of `a`, `b`" (serde) or "... expected one of a, b" (serde-saphyr).
    let Some(given) = message.split('`').nth(1) else {
        return message.to_owned();
    };
    let Some((_, list)) = message.split_once("expected one of ") else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = list
        .split(',')
        .map(|c| c.trim().trim_matches('`'))
        .filter(|c| !c.is_empty())
        .collect();
    match closest(given, candidates.iter().copied()) {
        Some(best) => format!("{message}; did you mean `{best}`?"),
        None => message.to_owned(),
    }
}

/// The candidate closest to `given` by edit distance, if it is close enough to be a plausible typo.
pub fn closest<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let given_l = given.to_lowercase();
    candidates
        .map(|c| (strsim::damerau_levenshtein(&given_l, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(given.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_field_gets_the_intended_name() {
        let m = with_did_you_mean(
            "unknown field `estimatr`, expected one of `estimator`, `objective`, `temperature`",
        );
        assert!(m.ends_with("did you mean `estimator`?"), "{m}");
    }

    #[test]
    fn saphyr_style_lists_without_backticks_work_too() {
        let m = with_did_you_mean(
            "unknown variant `rebr`, expected one of gsm, st_gsm, darts, reinforce, rebar, relax",
        );
        assert!(m.ends_with("did you mean `rebar`?"), "{m}");
    }

    #[test]
    fn far_off_names_get_no_suggestion() {
        let m =
            with_did_you_mean("unknown field `zzzzzzzz`, expected one of `estimator`, `objective`");
        assert!(!m.contains("did you mean"), "{m}");
    }

    #[test]
    fn issue_display_has_file_line_column_and_field() {
        let i = ConfigIssue {
            source: "experiments/a.yaml".into(),
            pos: Some(Pos { line: 12, col: 3 }),
            field: Some(FieldPath::parse("search.temperature").unwrap()),
            message: "must be > 0, got 0".into(),
        };
        assert_eq!(
            i.to_string(),
            "experiments/a.yaml:12:3: field `search.temperature`: must be > 0, got 0"
        );
    }
}
