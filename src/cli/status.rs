//! `unas status [--json]`: every planned job of the suite and where it stands (see
//! [`crate::runner::survey`]), with the ETA of what is left. Reads only; exit 0 whatever the states
//! (a bad suite is bad input, exit 2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use crate::config::Tier;
use crate::results::ResultsRoot;
use crate::runner::survey::{survey, Row};
use crate::text_table::TextTable;

use super::exit::EXIT_OK;

fn eta_text(s: Option<f64>) -> String {
    match s {
        Some(s) if s <= 0.0 => String::new(),
        Some(s) => humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string(),
        None => "?".into(),
    }
}

/// Seconds left over the jobs with an ETA, and how many have none.
fn total_left(rows: &[Row]) -> (f64, usize) {
    let open: Vec<&Row> = rows.iter().filter(|r| r.state.label() != "done").collect();
    let known: f64 = open.iter().filter_map(|r| r.eta_s).sum();
    let unknown = open
        .iter()
        .filter(|r| {
            r.eta_s.is_none() && matches!(r.state.label(), "pending" | "running" | "interrupted")
        })
        .count();
    (known, unknown)
}

pub fn run(suite: &[PathBuf], tier: Tier, root: &ResultsRoot, json: bool) -> Result<ExitCode> {
    let all = super::experiments::load_suite(suite, tier)?;
    let (rows, unplanned) = survey(&all, root);
    let (left, unknown) = total_left(&rows);
    if json {
        let doc = serde_json::json!({
            "results": root.0,
            "jobs": rows,
            "unplanned": unplanned.iter().map(|(e, why)| serde_json::json!({"experiment": e, "reason": why})).collect::<Vec<_>>(),
            "eta_s": left,
            "jobs_without_eta": unknown,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::from(EXIT_OK));
    }
    let mut t = TextTable::new(&[
        "experiment",
        "stage",
        "seed",
        "run id",
        "state",
        "ranks",
        "epochs",
        "ETA",
        "detail",
    ]);
    for r in &rows {
        t.push(vec![
            r.experiment.clone(),
            r.stage.into(),
            r.seed.to_string(),
            r.run_id.chars().take(16).collect(),
            r.state.label().into(),
            r.ranks.len().max(1).to_string(),
            r.epochs_done.to_string(),
            match r.state.label() {
                "failed" | "diverged" | "blocked" | "unreadable" => "-".into(),
                _ => eta_text(r.eta_s),
            },
            r.state.detail(),
        ]);
    }
    print!("{}", t.render());
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in &rows {
        match counts.iter_mut().find(|(l, _)| *l == r.state.label()) {
            Some(c) => c.1 += 1,
            None => counts.push((r.state.label(), 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
    println!(
        "{} jobs ({tier} tier, {}): {}",
        rows.len(),
        root.0.display(),
        counts.join(", ")
    );
    println!(
        "ETA: {} of work left on one worker{}",
        match eta_text(Some(left)) {
            t if t.is_empty() => "nothing".to_owned(),
            t => t,
        },
        if unknown > 0 {
            format!(", plus {unknown} job(s) of a shape no run has finished yet")
        } else {
            String::new()
        }
    );
    for (e, why) in &unplanned {
        println!("{e}: not planned: {why}");
    }
    Ok(ExitCode::from(EXIT_OK))
}
