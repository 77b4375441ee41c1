//! What the `unas data ...` subcommands do (the CLI declares and parses them).

use std::path::Path;

use anyhow::Result;

use crate::config::DatasetName;
use crate::data::cifar::Variant;
use crate::data::fetch::{self, Archive, FetchOptions};
use crate::data::inspect;

/// `unas data fetch`: download, verify and extract an official CIFAR archive (or a mirror of it).
pub fn fetch(variant: Variant, root: &Path, url: Option<String>) -> Result<()> {
    let mut archive = Archive::official(variant);
    if let Some(url) = url {
        archive.url = url;
    }
    let dir = fetch::fetch(&archive, root, &FetchOptions::default())?;
    println!("{} ready in {}", variant.cli_name(), dir.display());
    Ok(())
}

/// `unas data inspect`: prints the report (table or JSON); `false` when it found problems.
pub fn inspect(name: DatasetName, root: &Path, json: bool) -> Result<bool> {
    let report = inspect::inspect(name, root);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", inspect::render(&report));
    }
    Ok(report.problems.is_empty())
}
