//! The paper's result tables regenerated from our runs: CIFAR-10 and CIFAR-100 (test error, params,
//! search cost), ImageNet in the DARTS space (top-1/top-5 error, params, MACs) and the ProxylessNAS
//! space (top-1, latency on the device named, params, MACs). Rows of ours first, then the published
//! methods with numbers only in their `(published)` columns.

use super::super::baseline::{self, RI_COLUMN};
use super::super::evidence::Metric;
use super::super::table::{Align, ReportTable};
use super::{group_notes, main_groups, method, Ctx, Family, Published};

/// One metric column: its label, where our number comes from, its decimals, and the reference
/// metric that fills its `(published)` twin.
struct MetricCol {
    label: &'static str,
    metric: Metric,
    decimals: usize,
    reference: &'static str,
}

const fn m(
    label: &'static str,
    metric: Metric,
    decimals: usize,
    reference: &'static str,
) -> MetricCol {
    MetricCol {
        label,
        metric,
        decimals,
        reference,
    }
}

const SEARCH_COST: MetricCol = m(
    "search cost (h on the device)",
    Metric::SearchHours,
    3,
    "search_gpu_h",
);

fn build(
    ctx: &Ctx,
    name: &str,
    title: &str,
    caption: &str,
    family: Family,
    cols: &[MetricCol],
) -> ReportTable {
    let groups = main_groups(ctx, family);
    let published = Published::for_table(ctx.reference, name);
    let caption = format!("{caption}; RI: relative improvement over the random architectures of the same tier and recipe");
    let mut t = ReportTable::new(name, title, caption);
    t.col("method", Align::Left);
    t.col("experiment", Align::Left);
    t.col("tier", Align::Left);
    for c in cols {
        t.col(&format!("{} (ours)", c.label), Align::Right);
        if published.has(c.reference) {
            t.col(&format!("{} (published)", c.label), Align::Right);
        }
    }
    t.col(RI_COLUMN, Align::Right);
    t.col("device", Align::Left);
    for g in &groups {
        let mut row = vec![method(g), g.label.clone(), g.tier.clone()];
        for c in cols {
            row.push(ctx.cell(g, c.metric, c.decimals));
            if published.has(c.reference) {
                row.push(String::new());
            }
        }
        row.push(baseline::cell(ctx, g));
        row.push(g.devices().join(", "));
        t.push(row);
    }
    for method in published.methods() {
        let mut row = vec![method.clone(), String::new(), String::new()];
        for c in cols {
            row.push(String::new());
            if published.has(c.reference) {
                row.push(published.cell(&method, c.reference));
            }
        }
        row.push(String::new()); // RI: published numbers come from another code base and recipe
        row.push(String::new());
        t.push(row);
    }
    group_notes(&mut t, ctx, &groups);
    t.note(baseline::note(ctx, &groups));
    published.notes(&mut t);
    t.note("Each cell of ours: mean ± sample std over seeds, N = runs that finished; runs that gave no number are counted in the cell and listed here.".into());
    let smoke = groups.iter().any(|g| g.is_smoke());
    t.with_smoke_caption(smoke)
}

pub(crate) fn cifar(ctx: &Ctx, f: Family) -> ReportTable {
    let (name, title) = match f {
        Family::Cifar100 => ("cifar100", "CIFAR-100"),
        _ => ("cifar10", "CIFAR-10"),
    };
    build(
        ctx,
        name,
        title,
        &format!("{title} test error of the searched and the published cells trained from scratch, parameters, and search cost on the recorded device"),
        f,
        &[
            m("test error %", Metric::TestErr, 2, "test_error_pct"),
            m("params (M)", Metric::ParamsM, 2, "params_m"),
            SEARCH_COST,
        ],
    )
}

pub(crate) fn imagenet_darts(ctx: &Ctx) -> ReportTable {
    build(
        ctx,
        "imagenet_darts",
        "ImageNet (DARTS space)",
        "ImageNet top-1 and top-5 test error of cells trained from scratch in the mobile setting, parameters and multiply-accumulates",
        Family::ImagenetDarts,
        &[
            m("top-1 error %", Metric::TestErr, 2, "top1_error_pct"),
            m("top-5 error %", Metric::Top5Err, 2, "top5_error_pct"),
            m("params (M)", Metric::ParamsM, 2, "params_m"),
            m("MACs (M)", Metric::MacsM, 0, "macs_m"),
            SEARCH_COST,
        ],
    )
}

pub(crate) fn proxyless(ctx: &Ctx) -> ReportTable {
    build(
        ctx,
        "proxyless",
        "ImageNet (ProxylessNAS space)",
        "ImageNet top-1 and top-5 accuracy, latency on the device named, parameters and multiply-accumulates",
        Family::Proxyless,
        &[
            m("top-1 acc. %", Metric::Top1Acc, 2, "top1_acc_pct"),
            m("top-5 acc. %", Metric::Top5Acc, 2, "top5_acc_pct"),
            m("latency (ms)", Metric::LatMs, 2, "lat_ms"),
            m("params (M)", Metric::ParamsM, 2, "params_m"),
            m("MACs (M)", Metric::MacsM, 0, "macs_m"),
        ],
    )
}
