//! The named tables of the report, each made by one function from the scanned groups and their
//! evidence: the paper's result tables (`cifar10`, `cifar100`, `imagenet_darts`, `proxyless`), the
//! ablations (`estimators`, `objectives`), the published cells trained by us (`genotypes`) and the
//! suite's `status`. Footnotes carry each group's tier, device, protocol, deviations and every run that
//! gave no number.

mod ablation;
pub(crate) mod ctx;
mod genotypes;
mod paper;
mod published;
mod status;
pub(crate) mod sweep;

use crate::config::Protocol;

use super::evidence::{Evidence, GapKind};
use super::scan::Group;
use super::table::ReportTable;

pub(crate) use ctx::{family, Ctx, Family};
pub(crate) use published::Published;

/// Every table name, in the order of the report.
pub(crate) const NAMES: [&str; 8] = [
    "cifar10",
    "cifar100",
    "imagenet_darts",
    "proxyless",
    "estimators",
    "objectives",
    "genotypes",
    "status",
];

/// `mean over searches` or `best of N searches by validation accuracy (seed k)`.
pub(crate) fn protocol_text(g: &Group, e: &Evidence) -> String {
    if g.config.trains_random() {
        return "architectures drawn uniformly from the space, one per training seed unless train.genotype_seed fixes one; mean over them".into();
    }
    if !g.config.trains_searched() {
        return "published cell".into();
    }
    match (g.config.protocol, &e.best) {
        (Protocol::MeanOverSearches, _) => "mean over searches".into(),
        (Protocol::BestOfSearchesByVal, Some(b)) => format!(
            "best of {} searches by search-time val. acc. (seed {})",
            b.of, b.seed
        ),
        (Protocol::BestOfSearchesByVal, None) => {
            "best of searches by search-time val. acc. (none finished)".into()
        }
    }
}

/// The method a row of ours is: `UNAS (rebar, gengap)`, `UNAS_CIFAR10 (published cell)` or the
/// random architectures.
pub(crate) fn method(g: &Group) -> String {
    if g.config.trains_random() {
        return RANDOM_METHOD.into();
    }
    match (&g.config.search, &g.config.train) {
        (_, Some(t)) if t.genotype != "search" => format!("{} cell, trained by us", t.genotype),
        (Some(s), _) => format!(
            "ours: {} estimator, {} objective",
            serde_name(&s.estimator),
            serde_name(&s.objective.kind)
        ),
        _ => "ours".into(),
    }
}

/// What a `genotype: random` row is called.
pub(crate) const RANDOM_METHOD: &str = "random architectures (uniform in the space), trained by us";

/// The name an enum has in the experiment file (`st_gsm`, `gengap`).
pub(crate) fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Footnotes for the groups a table shows: tier and device, deviations, and every gap.
pub(crate) fn group_notes(t: &mut ReportTable, ctx: &Ctx, groups: &[&Group]) {
    for g in groups {
        let e = ctx.evidence(g);
        let devices = g.devices();
        t.note(format!(
            "{}: {} tier, ran on {}; {}.",
            g.label,
            g.tier,
            if devices.is_empty() {
                "no device recorded".into()
            } else {
                devices.join(", ")
            },
            protocol_text(g, &e)
        ));
        for d in &g.config.deviations {
            t.note(format!("{} deviates from the official code: {d}", g.label));
        }
        for gap in &e.gaps {
            let what = match gap.kind {
                GapKind::Missing => "missing".to_owned(),
                k => k.word().to_owned(),
            };
            t.note(format!(
                "{} {} seed {}: {what} — {}",
                g.label, gap.stage, gap.seed, gap.detail
            ));
        }
    }
}

/// Every table, in [`NAMES`] order, then one per sweep.
pub(crate) fn all(ctx: &Ctx) -> Vec<ReportTable> {
    let mut out: Vec<ReportTable> = NAMES.iter().filter_map(|n| by_name(ctx, n)).collect();
    out.extend(sweep::sweeps(ctx).iter().map(|sw| sweep::table(ctx, sw)));
    out
}

/// One table by its name (`None` for an unknown name).
pub(crate) fn by_name(ctx: &Ctx, name: &str) -> Option<ReportTable> {
    if name.starts_with("sweep-") {
        let sweeps = sweep::sweeps(ctx);
        return sweeps
            .iter()
            .find(|sw| sw.name() == name)
            .map(|sw| sweep::table(ctx, sw));
    }
    Some(match name {
        "cifar10" => paper::cifar(ctx, Family::Cifar10),
        "cifar100" => paper::cifar(ctx, Family::Cifar100),
        "imagenet_darts" => paper::imagenet_darts(ctx),
        "proxyless" => paper::proxyless(ctx),
        "estimators" => ablation::estimators(ctx),
        "objectives" => ablation::objectives(ctx),
        "genotypes" => genotypes::genotypes(ctx),
        "status" => status::report_table(ctx),
        _ => return None,
    })
}

/// The groups of a paper table: the main UNAS search (REBAR, gen-gap) and published cells trained
/// by us; the ablations have their own tables.
pub(crate) fn main_groups<'a>(ctx: &Ctx<'a>, f: Family) -> Vec<&'a Group> {
    ctx.groups
        .iter()
        .filter(|g| family(&g.config) == Some(f))
        .filter(|g| match &g.config.search {
            Some(s) => {
                s.estimator == crate::config::Estimator::Rebar
                    && s.objective.kind == crate::config::ObjectiveKind::Gengap
            }
            None => g.config.train.is_some(),
        })
        .collect()
}

/// The groups whose numbers a table shows (for the seed-spread figure beside it).
pub(crate) fn members<'a>(ctx: &Ctx<'a>, name: &str) -> Vec<&'a Group> {
    use crate::config::{Estimator, ObjectiveKind};
    let all = ctx.groups.iter();
    match name {
        "cifar10" => main_groups(ctx, Family::Cifar10),
        "cifar100" => main_groups(ctx, Family::Cifar100),
        "imagenet_darts" => main_groups(ctx, Family::ImagenetDarts),
        "proxyless" => main_groups(ctx, Family::Proxyless),
        "estimators" => all
            .filter(|g| family(&g.config) == Some(Family::Cifar10))
            .filter(|g| {
                g.config.trains_random()
                    || g.config
                        .search
                        .as_ref()
                        .is_some_and(|s| s.objective.kind == ObjectiveKind::Gengap)
            })
            .collect(),
        "objectives" => all
            .filter(|g| {
                matches!(
                    family(&g.config),
                    Some(Family::Cifar10) | Some(Family::Cifar100)
                )
            })
            .filter(|g| {
                g.config
                    .search
                    .as_ref()
                    .is_some_and(|s| s.estimator == Estimator::Rebar)
            })
            .collect(),
        "genotypes" => all
            .filter(|g| g.config.sweep_of.is_none())
            .filter(|g| {
                g.config
                    .train
                    .as_ref()
                    .is_some_and(|t| t.genotype != "search")
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::scan::RunConfig;

    fn cfg(name: &str, dataset: &str) -> RunConfig {
        RunConfig {
            name: name.into(),
            dataset: super::super::scan::ConfigDataset {
                name: dataset.into(),
                synthetic: None,
            },
            ..RunConfig::default()
        }
    }

    #[test]
    fn families_come_from_dataset_recipe_and_at_smoke_tier_the_name() {
        assert_eq!(family(&cfg("x", "cifar100")), Some(Family::Cifar100));
        assert_eq!(
            family(&cfg("c100-darts-unas", "synthetic")),
            Some(Family::Cifar100)
        );
        assert_eq!(
            family(&cfg("c10-darts-unas", "synthetic")),
            Some(Family::Cifar10)
        );
        let mut p = cfg("eval", "synthetic");
        p.space.name = "proxyless".into();
        assert_eq!(family(&p), Some(Family::Proxyless));
    }
}
