//! Writes `results/reports/`: `tables/<name>.{md,tex,csv}`, `figures/<name>.svg` with
//! `<name>-column.png` and `<name>-page.png`, `experiments/<group>.html`, `index.html`, `index.md`
//! and `manifest.json` (which page holds which tables and figures; the browser test reads it). Every
//! file goes through `results::atomic`. Figures render in parallel (rayon).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::results::atomic;

use super::figures::{self, Figure};
use super::html::{self, IndexEntry, StageView};
use super::scan::Group;
use super::suite::{self, Suite};
use super::table::ReportTable;
use super::tables;

/// What one page holds, for `manifest.json`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PageManifest {
    pub page: String,
    pub tables: Vec<String>,
    pub figures: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Manifest {
    pub index: String,
    pub tables: Vec<String>,
    pub figures: Vec<String>,
    pub pages: Vec<PageManifest>,
}

pub(crate) struct Written {
    pub files: Vec<PathBuf>,
    pub index: PathBuf,
}

/// Renders and writes `figs`, returning each figure's SVG by name.
fn write_figures(out: &Path, figs: &[Figure]) -> Result<(Vec<PathBuf>, BTreeMap<String, String>)> {
    let done: Vec<Result<(Vec<PathBuf>, String)>> =
        figs.par_iter().map(|f| figures::write(out, f)).collect();
    let mut files = Vec::new();
    let mut svgs = BTreeMap::new();
    for (f, r) in figs.iter().zip(done) {
        let (paths, svg) = r.with_context(|| format!("figure {}", f.name))?;
        files.extend(paths);
        svgs.insert(f.name.clone(), svg);
    }
    Ok((files, svgs))
}

pub(crate) fn page_path(g: &Group) -> String {
    format!("experiments/{}.html", figures::make::group_slug(g))
}

/// The status table cut down to one group's rows.
fn status_of(status: &ReportTable, g: &Group) -> ReportTable {
    let mut t = status.clone();
    t.rows.retain(|r| r[0] == g.label && r[1] == g.tier);
    t.footnotes.clear();
    t.title = format!("Run status of {} ({} tier)", g.label, g.tier);
    t.caption =
        "Every run of this experiment and how it ended, and every expected run that has none"
            .into();
    t.with_smoke_caption(g.is_smoke())
}

/// One experiment page and what it shows.
fn experiment_page(
    suite: &Suite,
    g: &Group,
    all_tables: &[ReportTable],
    figs: &[Figure],
    svgs: &BTreeMap<String, String>,
) -> (String, PageManifest) {
    let ctx = suite.ctx();
    let status = all_tables
        .iter()
        .find(|t| t.name == "status")
        .map(|t| status_of(t, g));
    let mut stages: Vec<StageView> = Vec::new();
    let has_search = g.config.search.is_some();
    let has_train = g.config.train.is_some();
    let member_tables: Vec<&ReportTable> = all_tables
        .iter()
        .filter(|t| {
            tables::members(&ctx, &t.name)
                .iter()
                .any(|m| m.key() == g.key())
        })
        .collect();
    for stage in ["search", "train"] {
        if (stage == "search" && !has_search) || (stage == "train" && !has_train) {
            continue;
        }
        let last = stage == "train" || !has_train;
        let mut view = StageView {
            stage,
            tables: Vec::new(),
            figures: Vec::new(),
        };
        for f in figs
            .iter()
            .filter(|f| f.group.as_deref() == Some(g.key().as_str()) && f.stage == stage)
        {
            if let Some(svg) = svgs.get(&f.name) {
                view.figures.push((f, svg.as_str()));
            }
        }
        if last {
            view.tables = member_tables.clone();
            for t in &member_tables {
                if let Some(f) = figs
                    .iter()
                    .find(|f| f.table.as_deref() == Some(t.name.as_str()))
                {
                    if let Some(svg) = svgs.get(&f.name) {
                        view.figures.push((f, svg.as_str()));
                    }
                }
            }
        }
        stages.push(view);
    }
    let status_ref = status.as_ref();
    if let (Some(st), Some(first)) = (status_ref, stages.first_mut()) {
        first.tables.insert(0, st);
    }
    let manifest = PageManifest {
        page: page_path(g),
        tables: stages
            .iter()
            .flat_map(|s| s.tables.iter().map(|t| t.name.clone()))
            .chain(["provenance".to_owned()])
            .collect(),
        figures: stages
            .iter()
            .flat_map(|s| s.figures.iter().map(|(f, _)| f.name.clone()))
            .collect(),
    };
    let text = html::experiment_page(g, html::provenance(g), &stages);
    (text, manifest)
}

fn state_summary(g: &Group) -> String {
    let done = g.runs.iter().filter(|r| r.done()).count();
    let other: Vec<String> = g
        .runs
        .iter()
        .filter(|r| !r.done())
        .map(|r| format!("{} seed {} {}", r.stage, r.seed, r.label()))
        .collect();
    if other.is_empty() {
        format!("{done} done")
    } else {
        format!("{done} done; {}", other.join(", "))
    }
}

/// Writes the whole report under `out`.
pub(crate) fn everything(suite: &Suite, out: &Path) -> Result<Written> {
    let mut files = Vec::new();
    let all_tables = suite.tables();
    for t in &all_tables {
        files.extend(suite::write_table(out, t)?);
    }
    let figs = figures::all(suite)?;
    let (fig_files, svgs) = write_figures(out, &figs)?;
    files.extend(fig_files);

    let mut manifest = Manifest {
        index: "index.html".into(),
        tables: all_tables.iter().map(|t| t.name.clone()).collect(),
        figures: figs.iter().map(|f| f.name.clone()).collect(),
        pages: Vec::new(),
    };
    let mut entries = Vec::new();
    for g in &suite.groups {
        let (text, m) = experiment_page(suite, g, &all_tables, &figs, &svgs);
        let p = out.join(&m.page);
        atomic::write_atomic(&p, text.as_bytes())?;
        files.push(p);
        entries.push(IndexEntry {
            href: m.page.clone(),
            label: g.label.clone(),
            tier: g.tier.clone(),
            state: state_summary(g),
        });
        manifest.pages.push(m);
    }
    let suite_figs: Vec<(&Figure, &str)> = figs
        .iter()
        .filter(|f| f.group.is_none())
        .filter_map(|f| svgs.get(&f.name).map(|s| (f, s.as_str())))
        .collect();
    let table_refs: Vec<&ReportTable> = all_tables.iter().collect();
    let index = out.join("index.html");
    atomic::write_atomic(
        &index,
        html::index_page(&entries, &table_refs, &suite_figs).as_bytes(),
    )?;
    files.push(index.clone());
    manifest.pages.push(PageManifest {
        page: "index.html".into(),
        tables: std::iter::once("experiments".to_owned())
            .chain(all_tables.iter().map(|t| t.name.clone()))
            .collect(),
        figures: suite_figs.iter().map(|(f, _)| f.name.clone()).collect(),
    });

    files.push(write_index_md(out, &all_tables, &figs)?);
    if let Some(st) = all_tables.iter().find(|t| t.name == "status") {
        files.push(write_status_md(suite, out, st)?);
    }
    let p = out.join("manifest.json");
    atomic::write_json(&p, &manifest)?;
    files.push(p);
    Ok(Written { files, index })
}

/// `index.md`: every table in one Markdown file and a list of the figures.
fn write_index_md(out: &Path, all_tables: &[ReportTable], figs: &[Figure]) -> Result<PathBuf> {
    let mut md = String::from(
        "# UNAS reproduction report\n\nRebuilt by `unas report` from the runs under `results/runs`; every number is ours unless its column says `(published)`. The HTML pages (`index.html`) hold the figures.\n\n",
    );
    for t in all_tables {
        md.push_str(&t.markdown());
        md.push('\n');
    }
    md.push_str("## Figures\n\n");
    for f in figs {
        md.push_str(&format!(
            "- [`{}`](figures/{}.svg) ([PNG 3.5 in](figures/{}-column.png), [PNG 7 in](figures/{}-page.png)): {}\n",
            f.name,
            f.name,
            f.name,
            f.name,
            f.full_caption()
        ));
    }
    let p = out.join("index.md");
    atomic::write_atomic(&p, md.as_bytes())?;
    Ok(p)
}

/// `status.md`: the status table and every experiment's deliberate deviations, on one page.
fn write_status_md(suite: &Suite, out: &Path, st: &ReportTable) -> Result<PathBuf> {
    let mut md = format!(
        "# Run status\n\nRebuilt by `unas report`.\n\n{}",
        st.markdown()
    );
    let deviations: Vec<&Group> = suite
        .groups
        .iter()
        .filter(|g| !g.config.deviations.is_empty())
        .collect();
    if !deviations.is_empty() {
        md.push_str("\n## Deliberate deviations from the official code\n\nAs each experiment's resolved `config.yaml` lists them.\n");
        let mut seen = Vec::new();
        for g in deviations {
            if seen.contains(&g.experiment) {
                continue;
            }
            seen.push(g.experiment.clone());
            md.push_str(&format!("\n**{}**\n\n", g.experiment));
            for d in &g.config.deviations {
                md.push_str(&format!("- {d}\n"));
            }
        }
    }
    let p = out.join("status.md");
    atomic::write_atomic(&p, md.as_bytes())?;
    Ok(p)
}

/// Writes one figure; `None` if no figure has that name.
pub(crate) fn one_figure(suite: &Suite, out: &Path, name: &str) -> Result<Option<Vec<PathBuf>>> {
    let figs = figures::all(suite)?;
    let Some(f) = figs.into_iter().find(|f| f.name == name) else {
        return Ok(None);
    };
    Ok(Some(figures::write(out, &f)?.0))
}

/// Writes the pages of one experiment (every tier it ran at), with their figures; `None` if no
/// experiment has that name (or page slug).
pub(crate) fn one_experiment(
    suite: &Suite,
    out: &Path,
    name: &str,
) -> Result<Option<Vec<PathBuf>>> {
    let groups: Vec<&Group> = suite
        .groups
        .iter()
        .filter(|g| g.experiment == name || figures::make::group_slug(g) == name)
        .collect();
    if groups.is_empty() {
        return Ok(None);
    }
    let all_tables = suite.tables();
    let figs = figures::all(suite)?;
    let wanted: Vec<Figure> = figs
        .iter()
        .filter(|f| {
            groups
                .iter()
                .any(|g| f.group.as_deref() == Some(g.key().as_str()))
                || f.table.is_some()
        })
        .cloned()
        .collect();
    let (mut files, svgs) = write_figures(out, &wanted)?;
    for g in groups {
        let (text, m) = experiment_page(suite, g, &all_tables, &wanted, &svgs);
        let p = out.join(&m.page);
        atomic::write_atomic(&p, text.as_bytes())?;
        files.push(p);
    }
    Ok(Some(files))
}

/// Names of every figure (for `--list`).
pub(crate) fn figure_names(suite: &Suite) -> Result<Vec<String>> {
    Ok(figures::all(suite)?.into_iter().map(|f| f.name).collect())
}

/// Names of the tables.
pub(crate) fn table_names() -> &'static [&'static str] {
    &tables::NAMES
}
