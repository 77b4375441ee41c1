//! The suite's `status` table: every run folder under `results/runs`, its state and, for a failed or
//! diverged run, why; and every expected run that has no folder (missing, or blocked by its failed
//! search). Reads only what the runner wrote (status.json, provenance.json, config.yaml).
//! [`scan`], [`table`] and [`deviations`] are the terminal listing the older `unas report` printed.

use std::path::Path;

use anyhow::Result;
use walkdir::WalkDir;

use crate::results::layout::{PROVENANCE, STATUS};
use crate::results::provenance::Provenance;
use crate::results::{State, Status};

use super::text_table::TextTable;

#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub experiment: String,
    pub tier: String,
    pub stage: String,
    pub seed: u64,
    pub run_id: String,
    pub state: String,
    pub detail: String,
    pub dir: String,
}

/// The part of a run's resolved `config.yaml` the report quotes.
#[derive(serde::Deserialize)]
struct ConfigDeviations {
    name: String,
    #[serde(default)]
    deviations: Vec<String>,
}

/// Each experiment's `deviations`, read from its runs' `config.yaml` (experiments without any left out).
pub fn deviations(runs: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in WalkDir::new(runs)
        .min_depth(1)
        .max_depth(4)
        .into_iter()
        .flatten()
    {
        if entry.file_name() != crate::results::layout::CONFIG {
            continue;
        }
        let parsed = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|t| serde_saphyr::from_str::<ConfigDeviations>(&t).ok());
        if let Some(c) = parsed.filter(|c| !c.deviations.is_empty()) {
            out.entry(c.name).or_insert(c.deviations);
        }
    }
    out
}

/// All runs under `runs`, sorted by experiment, tier, stage, seed.
pub fn scan(runs: &Path) -> Result<Vec<RunRow>> {
    let mut rows = Vec::new();
    if !runs.is_dir() {
        return Ok(rows);
    }
    for entry in WalkDir::new(runs).min_depth(1).max_depth(4) {
        let entry = entry?;
        if !entry.file_type().is_file() || entry.file_name() != STATUS {
            continue;
        }
        let dir = entry.path().parent().expect("status has a folder");
        let status = match Status::read(dir) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                rows.push(RunRow {
                    experiment: "?".into(),
                    tier: "?".into(),
                    stage: "?".into(),
                    seed: 0,
                    run_id: "?".into(),
                    state: "unreadable".into(),
                    detail: format!("{e:#}"),
                    dir: dir.display().to_string(),
                });
                continue;
            }
        };
        let prov: Option<Provenance> = std::fs::read_to_string(dir.join(PROVENANCE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let detail = match &status.state {
            State::Failed { reason } => reason.clone(),
            State::Diverged { step, term } => format!("non-finite `{term}` at step {step}"),
            State::Running => format!("pid {} (interrupted if that process is gone)", status.pid),
            State::Done => String::new(),
        };
        let (experiment, tier, stage, seed, run_id) = match &prov {
            Some(p) => (
                p.experiment.clone(),
                p.tier.clone(),
                p.stage.clone(),
                p.seed,
                p.run_id.clone(),
            ),
            None => ("?".into(), "?".into(), "?".into(), 0, "?".into()),
        };
        rows.push(RunRow {
            experiment,
            tier,
            stage,
            seed,
            run_id,
            state: status.label().into(),
            detail,
            dir: dir.display().to_string(),
        });
    }
    rows.sort_by(|a, b| {
        (&a.experiment, &a.tier, &a.stage, a.seed).cmp(&(&b.experiment, &b.tier, &b.stage, b.seed))
    });
    Ok(rows)
}

pub fn table(rows: &[RunRow]) -> TextTable {
    let mut t = TextTable::new(&[
        "experiment",
        "tier",
        "stage",
        "seed",
        "run id",
        "state",
        "detail",
    ]);
    for r in rows {
        t.push(vec![
            r.experiment.clone(),
            r.tier.clone(),
            r.stage.clone(),
            r.seed.to_string(),
            r.run_id.chars().take(16).collect(),
            r.state.clone(),
            r.detail.clone(),
        ]);
    }
    t
}

/// The `status` table of the report.
pub(crate) fn report_table(ctx: &super::tables::Ctx) -> super::table::ReportTable {
    use super::table::{Align, ReportTable};
    let mut t = ReportTable::new(
        "status",
        "Run status",
        format!(
            "Every run under {} and how it ended, and every expected run that has none",
            ctx.scan.root.display()
        ),
    );
    for (label, align) in [
        ("experiment", Align::Left),
        ("tier", Align::Left),
        ("stage", Align::Left),
        ("seed", Align::Right),
        ("run id", Align::Left),
        ("state", Align::Left),
        ("detail", Align::Left),
        ("device", Align::Left),
    ] {
        t.col(label, align);
    }
    for g in ctx.groups {
        for r in &g.runs {
            t.push(vec![
                g.label.clone(),
                r.tier.clone(),
                r.stage.clone(),
                r.seed.to_string(),
                r.run_id.chars().take(16).collect(),
                r.state.label().into(),
                r.state.detail(),
                r.device(),
            ]);
        }
        let e = ctx.evidence(g);
        for gap in e.gaps.iter().filter(|gap| {
            matches!(
                gap.kind,
                super::evidence::GapKind::Missing | super::evidence::GapKind::Blocked
            )
        }) {
            t.push(vec![
                g.label.clone(),
                g.tier.clone(),
                gap.stage.into(),
                gap.seed.to_string(),
                String::new(),
                gap.kind.word().into(),
                gap.detail.clone(),
                String::new(),
            ]);
        }
    }
    let count = |state: &str| t.rows.iter().filter(|r| r[5] == state).count();
    let summary = format!(
        "{} runs: {} done, {} failed, {} diverged, {} running or interrupted; {} missing, {} blocked.",
        t.rows.len(),
        count("done"),
        count("failed"),
        count("diverged"),
        count("running"),
        count("missing"),
        count("blocked")
    );
    t.note(summary);
    let smoke = ctx.groups.iter().any(|g| g.is_smoke());
    t.with_smoke_caption(smoke)
}
