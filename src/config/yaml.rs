//! Reading YAML the user wrote: the file checks (size, type, encoding) and serde-saphyr errors turned
//! into [`ConfigError`]s with file:line:col, the field, and a message in the user's terms. A leaf of
//! `config/`: it knows nothing of experiments, tiers or validation.

use std::path::Path;

use super::error::{with_did_you_mean, ConfigError, ConfigIssue};
use super::path::FieldPath;
use super::positions::Pos;

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
    let raw = e.without_snippet().to_string();
    let message = clean_message(&raw);
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
    match msg {
        "invalid u32" | "invalid u64" => "expected a whole number ≥ 0".to_owned(),
        "invalid floating point" => "expected a number".to_owned(),
        "cannot deserialize null into string" => "expected a text value, found nothing".to_owned(),
        m => m.to_owned(),
    }
}
