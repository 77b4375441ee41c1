//! The `unas data ...` subcommands; `main.rs` parses and calls [`run`].

use std::path::PathBuf;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};

use crate::config::DatasetName;
use crate::data::cifar::Variant;
use crate::data::fetch::{self, Archive, FetchOptions};
use crate::data::inspect;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FetchName {
    Cifar10,
    Cifar100,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InspectName {
    Cifar10,
    Cifar100,
    Imagenet,
    Synthetic,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download, verify (size + MD5) and extract an official CIFAR archive into ROOT.
    Fetch {
        #[arg(value_enum)]
        dataset: FetchName,
        #[arg(long)]
        root: PathBuf,
        /// A mirror of the official archive (same bytes).
        #[arg(long)]
        url: Option<String>,
    },
    /// Counts per split and class, image shape, fingerprint, and problems.
    Inspect {
        #[arg(value_enum)]
        dataset: InspectName,
        #[arg(long, default_value = "data")]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Runs a data subcommand; the process exit code (0 ok, 1 failed or problems found).
pub fn run(command: DataCommand) -> i32 {
    match try_run(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

fn try_run(command: DataCommand) -> Result<i32> {
    match command {
        DataCommand::Fetch { dataset, root, url } => {
            let variant = match dataset {
                FetchName::Cifar10 => Variant::Cifar10,
                FetchName::Cifar100 => Variant::Cifar100,
            };
            let mut archive = Archive::official(variant);
            if let Some(url) = url {
                archive.url = url;
            }
            let dir = fetch::fetch(&archive, &root, &FetchOptions::default())?;
            println!("{} ready in {}", variant.cli_name(), dir.display());
            Ok(0)
        }
        DataCommand::Inspect {
            dataset,
            root,
            json,
        } => {
            let name = match dataset {
                InspectName::Cifar10 => DatasetName::Cifar10,
                InspectName::Cifar100 => DatasetName::Cifar100,
                InspectName::Imagenet => DatasetName::Imagenet,
                InspectName::Synthetic => DatasetName::Synthetic,
            };
            let report = inspect::inspect(name, &root);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", inspect::render(&report));
            }
            Ok(if report.problems.is_empty() { 0 } else { 1 })
        }
    }
}
