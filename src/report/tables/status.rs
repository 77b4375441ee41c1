//! The suite's `status` table: every run folder under `results/runs`, its state and, for a failed or
//! diverged run, why; and every expected run that has no folder (missing, or blocked by its failed
//! search). Reads only what the runner wrote (status.json, provenance.json, config.yaml).

use crate::report::evidence::GapKind;
use crate::report::table::{Align, ReportTable};

/// The `status` table of the report.
pub(super) fn report_table(ctx: &super::Ctx) -> ReportTable {
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
                r.label().into(),
                r.detail(),
                r.device(),
            ]);
        }
        let e = ctx.evidence(g);
        for gap in e
            .gaps
            .iter()
            .filter(|gap| matches!(gap.kind, GapKind::Missing | GapKind::Blocked))
        {
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
        "{} runs: {} done, {} failed, {} diverged, {} damaged, {} running or interrupted; {} missing, {} blocked.",
        t.rows.len(),
        count("done"),
        count("failed"),
        count("diverged"),
        count("damaged"),
        count("running"),
        count("missing"),
        count("blocked")
    );
    t.note(summary);
    let smoke = ctx.groups.iter().any(|g| g.is_smoke());
    t.with_smoke_caption(smoke)
}
