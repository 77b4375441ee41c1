//! `genotypes`: the published cells (UNAS_CIFAR10, UNAS_IMAGENET, DARTS_V2, ...) trained from scratch
//! by us, with the names read from the runs' configs.

use super::super::evidence::Metric;
use super::super::scan::Group;
use super::super::table::{Align, ReportTable};
use super::{family, group_notes, Ctx, Family};

pub(crate) fn genotypes(ctx: &Ctx) -> ReportTable {
    let mut t = ReportTable::new(
        "genotypes",
        "Published and random cells trained by us",
        "Each published architecture, and the architectures drawn uniformly from the space (`random`, one per training seed; their cells are drawn on the experiment's page), trained from scratch with its recipe: test error, parameters and multiply-accumulates".into(),
    );
    for (label, align) in [
        ("genotype", Align::Left),
        ("dataset", Align::Left),
        ("experiment", Align::Left),
        ("tier", Align::Left),
        ("top-1 error %", Align::Right),
        ("top-5 error %", Align::Right),
        ("params (M)", Align::Right),
        ("MACs (M)", Align::Right),
        ("device", Align::Left),
    ] {
        t.col(label, align);
    }
    let groups: Vec<&Group> = ctx
        .groups
        .iter()
        .filter(|g| g.config.sweep_of.is_none()) // a sweep has its own table
        .filter(|g| {
            g.config
                .train
                .as_ref()
                .is_some_and(|t| t.genotype != "search")
        })
        .collect();
    for g in &groups {
        let dataset = match family(&g.config) {
            Some(Family::Cifar10) => "CIFAR-10",
            Some(Family::Cifar100) => "CIFAR-100",
            Some(Family::ImagenetDarts) | Some(Family::Proxyless) => "ImageNet",
            None => "?",
        };
        let dataset = if g.config.dataset.name == "synthetic" {
            format!("{dataset} (synthetic stand-in)")
        } else {
            dataset.to_owned()
        };
        t.push(vec![
            g.config
                .train
                .as_ref()
                .map(|t| t.genotype.clone())
                .unwrap_or_default(),
            dataset,
            g.label.clone(),
            g.tier.clone(),
            ctx.cell(g, Metric::TestErr, 2),
            ctx.cell(g, Metric::Top5Err, 2),
            ctx.cell(g, Metric::ParamsM, 3),
            ctx.cell(g, Metric::MacsM, 0),
            g.devices().join(", "),
        ]);
    }
    group_notes(&mut t, ctx, &groups);
    let smoke = groups.iter().any(|g| g.is_smoke());
    t.with_smoke_caption(smoke)
}
