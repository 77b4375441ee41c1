//! The whole report in one value: the scan, its groups, their evidence and the published numbers,
//! loaded once; and the writer of `results/reports/` (every file through `results::atomic`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::reference::{self, Reference};
use crate::results::atomic;

use super::evidence::{self, Evidence};
use super::frames::{self, Frames};
use super::latex;
use super::scan::{self, Group, Scan};
use super::table::ReportTable;
use super::tables::{self, Ctx};

pub(crate) struct Suite {
    pub scan: Scan,
    pub groups: Vec<Group>,
    pub frames: Frames,
    pub evidence: BTreeMap<String, Evidence>,
    pub reference: Option<Reference>,
    /// Why the published numbers are absent, when they are.
    pub reference_problem: Option<String>,
}

impl Suite {
    /// Reads every run under `runs` and the published numbers at `reference` (optional: a missing
    /// file leaves the `(published)` columns out and says so).
    pub(crate) fn load(runs: &Path, reference_path: &Path) -> Result<Suite> {
        let scan = scan::scan(runs);
        let groups = scan::groups(&scan);
        let frames = frames::load(&groups)?;
        let evidence = evidence::collect(&frames, &groups)?;
        let (reference, reference_problem) = if reference_path.exists() {
            match reference::load(reference_path) {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(format!("{e}"))),
            }
        } else {
            (
                None,
                Some(format!(
                    "{} not found: the (published) columns are left out (run from the repository root, or pass --reference)",
                    reference_path.display()
                )),
            )
        };
        Ok(Suite {
            scan,
            groups,
            frames,
            evidence,
            reference,
            reference_problem,
        })
    }

    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            scan: &self.scan,
            groups: &self.groups,
            evidence: &self.evidence,
            reference: self.reference.as_ref(),
        }
    }

    pub(crate) fn tables(&self) -> Vec<ReportTable> {
        let mut all = tables::all(&self.ctx());
        for t in &mut all {
            if let Some(p) = &self.reference_problem {
                t.note(format!("Published numbers: {p}"));
            }
            if t.name == "status" {
                for u in &self.frames.unreadable {
                    t.note(format!("unreadable table: {u}"));
                }
            }
        }
        all
    }
}

/// The three files of a table under `dir/tables/`.
pub(crate) fn write_table(dir: &Path, t: &ReportTable) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (ext, text) in [
        ("md", t.markdown()),
        ("tex", latex::render(t)),
        ("csv", t.csv()),
    ] {
        let p = dir.join("tables").join(format!("{}.{ext}", t.name));
        atomic::write_atomic(&p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}
