//! The ablation tables. `estimators`: one row per gradient estimator (all six, whether or not they
//! ran) on CIFAR-10 with the gen-gap objective: search-time validation accuracy, the
//! architecture-gradient variance, the final test error and the search cost. `objectives`: train /
//! val / gen-gap objectives with REBAR, test error on CIFAR-10 and CIFAR-100.

use crate::config::{Estimator, ObjectiveKind};

use super::super::baseline::{self, RI_COLUMN};
use super::super::evidence::Metric;
use super::super::scan::Group;
use super::super::table::{Align, ReportTable};
use super::{family, group_notes, serde_name, Ctx, Family};

const OBJECTIVES: [ObjectiveKind; 3] = [
    ObjectiveKind::Train,
    ObjectiveKind::Val,
    ObjectiveKind::Gengap,
];

fn is_cifar(g: &Group) -> bool {
    matches!(
        family(&g.config),
        Some(Family::Cifar10) | Some(Family::Cifar100)
    )
}

pub(crate) fn estimators(ctx: &Ctx) -> ReportTable {
    let mut t = ReportTable::new(
        "estimators",
        "Gradient estimators",
        "Each architecture-gradient estimator on CIFAR-10 with the generalisation-gap objective: final search-time validation accuracy, mean architecture-gradient variance over the search phase, test error of the searched cell trained from scratch, search cost, and the relative improvement over random architectures trained alike".into(),
    );
    for (label, align) in [
        ("estimator", Align::Left),
        ("experiment", Align::Left),
        ("tier", Align::Left),
        ("search val. acc. %", Align::Right),
        ("arch.-gradient variance", Align::Right),
        ("test error %", Align::Right),
        ("search cost (h on the device)", Align::Right),
        (RI_COLUMN, Align::Right),
    ] {
        t.col(label, align);
    }
    let mut shown: Vec<&Group> = Vec::new();
    for est in Estimator::ALL {
        let groups: Vec<&Group> = ctx
            .groups
            .iter()
            .filter(|g| family(&g.config) == Some(Family::Cifar10))
            .filter(|g| {
                g.config.search.as_ref().is_some_and(|s| {
                    s.estimator == est && s.objective.kind == ObjectiveKind::Gengap
                })
            })
            .collect();
        if groups.is_empty() {
            t.push(vec![
                serde_name(&est),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            t.note(format!(
                "{}: no runs yet (no experiment searches with it on CIFAR-10 with the gen-gap objective).",
                serde_name(&est)
            ));
        }
        for g in groups {
            t.push(vec![
                serde_name(&est),
                g.label.clone(),
                g.tier.clone(),
                ctx.cell(g, Metric::SearchValAcc, 2),
                ctx.cell(g, Metric::GradVar, 4),
                ctx.cell(g, Metric::TestErr, 2),
                ctx.cell(g, Metric::SearchHours, 3),
                baseline::cell(ctx, g),
            ]);
            shown.push(g);
        }
    }
    // The architectures no search chose: the floor every estimator is measured against.
    for g in random_cifar10(ctx) {
        t.push(vec![
            "random (no search)".into(),
            g.label.clone(),
            g.tier.clone(),
            String::new(),
            String::new(),
            ctx.cell(g, Metric::TestErr, 2),
            String::new(),
            String::new(),
        ]);
        shown.push(g);
    }
    group_notes(&mut t, ctx, &shown);
    t.note(baseline::note(ctx, &shown));
    let smoke = shown.iter().any(|g| g.is_smoke());
    t.with_smoke_caption(smoke)
}

/// The random-sampling groups of CIFAR-10 (the estimator table's `random` rows).
pub(crate) fn random_cifar10<'a>(ctx: &Ctx<'a>) -> Vec<&'a Group> {
    ctx.groups
        .iter()
        .filter(|g| family(&g.config) == Some(Family::Cifar10) && g.config.trains_random())
        .collect()
}

/// The REBAR searches of one objective on one CIFAR dataset.
fn of_objective<'a>(ctx: &Ctx<'a>, f: Family, kind: ObjectiveKind) -> Vec<&'a Group> {
    ctx.groups
        .iter()
        .filter(|g| is_cifar(g) && family(&g.config) == Some(f))
        .filter(|g| {
            g.config
                .search
                .as_ref()
                .is_some_and(|s| s.objective.kind == kind && s.estimator == Estimator::Rebar)
        })
        .collect()
}

pub(crate) fn objectives(ctx: &Ctx) -> ReportTable {
    let mut t = ReportTable::new(
        "objectives",
        "Search objectives",
        "The training loss, the validation loss and the generalisation gap as search objectives with the REBAR estimator: test error of the searched cell trained from scratch on CIFAR-10 and CIFAR-100".into(),
    );
    for (label, align) in [
        ("objective", Align::Left),
        ("tier", Align::Left),
        ("CIFAR-10 experiment", Align::Left),
        ("CIFAR-10 test error %", Align::Right),
        ("CIFAR-100 experiment", Align::Left),
        ("CIFAR-100 test error %", Align::Right),
    ] {
        t.col(label, align);
    }
    let mut shown: Vec<&Group> = Vec::new();
    for kind in OBJECTIVES {
        let (c10, c100) = (
            of_objective(ctx, Family::Cifar10, kind),
            of_objective(ctx, Family::Cifar100, kind),
        );
        let mut tiers: Vec<String> = c10.iter().chain(&c100).map(|g| g.tier.clone()).collect();
        tiers.sort();
        tiers.dedup();
        if tiers.is_empty() {
            t.push(vec![
                serde_name(&kind),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            continue;
        }
        for tier in tiers {
            let a: Vec<&Group> = c10.iter().copied().filter(|g| g.tier == tier).collect();
            let b: Vec<&Group> = c100.iter().copied().filter(|g| g.tier == tier).collect();
            for i in 0..a.len().max(b.len()) {
                let cell = |g: Option<&&Group>| match g {
                    Some(g) => (g.label.clone(), ctx.cell(g, Metric::TestErr, 2)),
                    None => (String::new(), String::new()),
                };
                let (e10, v10) = cell(a.get(i));
                let (e100, v100) = cell(b.get(i));
                t.push(vec![serde_name(&kind), tier.clone(), e10, v10, e100, v100]);
                shown.extend(a.get(i).copied());
                shown.extend(b.get(i).copied());
            }
        }
    }
    group_notes(&mut t, ctx, &shown);
    let smoke = shown.iter().any(|g| g.is_smoke());
    t.with_smoke_caption(smoke)
}
