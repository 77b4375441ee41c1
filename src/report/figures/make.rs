//! Every figure of the report, made from the stacked Parquet tables with polars: per search group
//! its curves (train and validation loss, generalisation gap, band over seeds), its architecture
//! distribution over epochs and its derived cells; per training group the test accuracy over
//! epochs; suite-wide the architecture-gradient variance per estimator, accuracy against latency
//! with the Pareto front, and the seed spread of every table's rows.

use std::collections::BTreeMap;

use anyhow::Result;
use polars::prelude::*;

use super::super::aggregate::{self, BandPoint};
use super::super::scan::{Group, Run};
use super::super::suite::Suite;
use super::super::tables::{self, serde_name, Family};
use super::{slug, CellGraph, Figure, HeatPanel, Line, LinePanel, Plot, PointSet, ScatterPoint};

/// A group's figure names start with this: `c10-darts-unas-smoke`.
pub(crate) fn group_slug(g: &Group) -> String {
    slug(&format!("{}-{}", g.label, g.tier))
}

fn of_group(frame: &DataFrame, g: &Group, stage: &str) -> LazyFrame {
    frame.clone().lazy().filter(
        col("group")
            .eq(lit(g.key()))
            .and(col("stage").eq(lit(stage.to_owned()))),
    )
}

/// Epoch over both phases (the tables count epochs within a phase; warm-up comes first).
fn global_epoch(g: &Group) -> Expr {
    let warmup = g
        .config
        .search
        .as_ref()
        .and_then(|s| s.epochs.as_ref())
        .map(|e| e.warmup)
        .unwrap_or(0) as i64;
    col("epoch")
        + when(col("phase").eq(lit("search")))
            .then(lit(warmup))
            .otherwise(lit(0i64))
}

fn line(label: &str, points: Vec<BandPoint>) -> Line {
    Line {
        label: label.into(),
        points,
        dashed: false,
    }
}

fn panel(title: &str, x: &str, y: &str, lines: Vec<Line>) -> LinePanel {
    LinePanel {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        lines: lines.into_iter().filter(|l| !l.points.is_empty()).collect(),
        x_categories: Vec::new(),
        dots: false,
    }
}

fn figure(
    name: String,
    title: String,
    caption: String,
    g: Option<&Group>,
    stage: &'static str,
    aspect: f64,
    plot: Plot,
) -> Figure {
    Figure {
        name,
        title,
        caption,
        aspect,
        smoke: g.is_some_and(|g| g.is_smoke()),
        group: g.map(|g| g.key()),
        table: None,
        stage,
        plot,
    }
}

fn seeds_text(n: usize) -> String {
    format!("{n} seed{}", if n == 1 { "" } else { "s" })
}

fn search_curves(s: &Suite, g: &Group) -> Result<Figure> {
    let lf = of_group(&s.frames.epochs, g, "search").with_column(global_epoch(g).alias("x"));
    let train = aggregate::band(lf.clone(), "x", col("loss_train"))?;
    let val = aggregate::band(lf.clone(), "x", col("loss_val"))?;
    let gap = aggregate::band(lf, "x", col("loss_val") - col("loss_train"))?;
    let n = g.stage_runs("search").filter(|r| r.done()).count();
    let mut val_line = line("validation", val);
    val_line.dashed = true;
    Ok(figure(
        format!("search-curves-{}", group_slug(g)),
        format!("Search curves: {} ({} tier)", g.label, g.tier),
        format!(
            "Search of {}: training and validation cross-entropy (left) and the generalisation gap ℓ_val − ℓ_train (right) per epoch, warm-up epochs first; line = mean, band = ± std over {} finished.",
            g.label,
            seeds_text(n)
        ),
        Some(g),
        "search",
        0.42,
        Plot::Lines(vec![
            panel("loss", "epoch", "cross-entropy (nats)", vec![line("train", train), val_line]),
            panel("generalisation gap", "epoch", "ℓ_val − ℓ_train (nats)", vec![line("gap", gap)]),
        ]),
    ))
}

fn arch_heatmap(s: &Suite, g: &Group) -> Result<Figure> {
    let df = s
        .frames
        .arch
        .clone()
        .lazy()
        .filter(col("group").eq(lit(g.key())))
        .group_by([
            col("cell_type"),
            col("node"),
            col("selector"),
            col("key"),
            col("choice"),
            col("choice_name"),
            col("epoch"),
        ])
        .agg([col("prob").mean().alias("prob")])
        .sort(
            ["cell_type", "key", "node", "selector", "choice", "epoch"],
            SortMultipleOptions::default(),
        )
        .collect()?;
    let get_s = |c: &str| df.column(c).ok().and_then(|c| c.str().ok().cloned());
    let get_i = |c: &str| df.column(c).ok().and_then(|c| c.i64().ok().cloned());
    let (Some(ct), Some(key), Some(name)) =
        (get_s("cell_type"), get_s("key"), get_s("choice_name"))
    else {
        anyhow::bail!("arch table without its columns");
    };
    let (Some(node), Some(sel), Some(choice), Some(epoch)) = (
        get_i("node"),
        get_i("selector"),
        get_i("choice"),
        get_i("epoch"),
    ) else {
        anyhow::bail!("arch table without its columns");
    };
    let prob = df.column("prob")?.f64()?.clone();
    // (cell type, key, node, selector) → (choice → name, (choice, epoch) → prob)
    type Sel = (String, String, i64, i64);
    type Probs = (BTreeMap<i64, String>, BTreeMap<(i64, i64), f64>);
    let mut panels: BTreeMap<Sel, Probs> = BTreeMap::new();
    for i in 0..df.height() {
        let k: Sel = (
            ct.get(i).unwrap_or("").to_owned(),
            key.get(i).unwrap_or("").to_owned(),
            node.get(i).unwrap_or(0),
            sel.get(i).unwrap_or(0),
        );
        let e = panels.entry(k).or_default();
        let c = choice.get(i).unwrap_or(0);
        e.0.insert(c, name.get(i).unwrap_or("?").to_owned());
        e.1.insert(
            (c, epoch.get(i).unwrap_or(0)),
            prob.get(i).unwrap_or(f64::NAN),
        );
    }
    let mut out = Vec::new();
    for ((cell_type, key, node, sel), (names, probs)) in panels {
        let mut epochs: Vec<i64> = probs.keys().map(|(_, e)| *e).collect();
        epochs.sort();
        epochs.dedup();
        let choices: Vec<i64> = names.keys().copied().collect();
        out.push(HeatPanel {
            title: format!("{cell_type} node {node} sel. {sel}: {key}"),
            choices: choices.iter().map(|c| names[c].clone()).collect(),
            prob: choices
                .iter()
                .map(|c| {
                    epochs
                        .iter()
                        .map(|e| probs.get(&(*c, *e)).copied().unwrap_or(f64::NAN))
                        .collect()
                })
                .collect(),
            epochs,
        });
    }
    let rows = out.len().div_ceil(super::heatmap::COLUMNS).max(1);
    Ok(figure(
        format!("arch-distribution-{}", group_slug(g)),
        format!("Architecture distribution: {} ({} tier)", g.label, g.tier),
        format!(
            "Probability of every choice of every selector of {} at the end of each search epoch (mean over seeds; viridis, 0 dark to 1 yellow).",
            g.label
        ),
        Some(g),
        "search",
        (0.2 * rows as f64 + 0.08).min(1.4),
        Plot::Heat(out),
    ))
}

/// A DARTS genotype's cell as graph edges (`None` for anything else, e.g. ProxylessNAS).
pub(crate) fn cell_graph(genotype: &serde_json::Value, which: &str) -> Option<CellGraph> {
    let nodes = genotype.get(which)?.as_array()?;
    let mut edges = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let inputs = n.get("inputs")?.as_array()?;
        let ops = n.get("ops")?.as_array()?;
        for (inp, op) in inputs.iter().zip(ops) {
            edges.push((inp.as_u64()? as usize, i + 2, op.as_str()?.to_owned()));
        }
    }
    let concat = genotype
        .get(format!("{which}_concat"))
        .and_then(|c| c.as_array())
        .map(|c| {
            c.iter()
                .filter_map(|v| v.as_u64().map(|v| v as usize))
                .collect()
        })
        .unwrap_or_else(|| (2..nodes.len() + 2).collect());
    Some(CellGraph {
        title: String::new(),
        edges,
        nodes: nodes.len(),
        concat,
    })
}

/// The cells of the first finished run of `stage` with a genotype; for a random-sampling group, of
/// every finished training (each drew its own architecture), one figure each.
fn cells(g: &Group, stage: &'static str) -> Vec<Figure> {
    let mut done = g
        .stage_runs(stage)
        .filter(|r| r.done() && r.genotype.is_some());
    if g.config.trains_random() {
        done.filter_map(|r| cells_of(g, stage, r)).collect()
    } else {
        done.next()
            .and_then(|r| cells_of(g, stage, r))
            .into_iter()
            .collect()
    }
}

fn cells_of(g: &Group, stage: &'static str, run: &Run) -> Option<Figure> {
    let genotype = run.genotype.as_ref()?;
    let mut normal = cell_graph(genotype, "normal")?;
    let mut reduce = cell_graph(genotype, "reduce")?;
    let (what, name) = if stage == "search" {
        (
            format!("derived by the search with seed {}", run.seed),
            format!("cells-{}", group_slug(g)),
        )
    } else if g.config.trains_random() {
        (
            format!("drawn uniformly, training seed {}", run.seed),
            format!("cells-{}-seed{}", group_slug(g), run.seed),
        )
    } else {
        ("trained".to_owned(), format!("cells-{}", group_slug(g)))
    };
    normal.title = format!("normal cell ({what})");
    reduce.title = format!("reduction cell ({what})");
    Some(figure(
        name,
        format!("Cells: {} ({} tier, {what})", g.label, g.tier),
        format!(
            "The normal and the reduction cell of {} {what}: inputs c_{{k-2}} and c_{{k-1}} (k-2, k-1), intermediate nodes 0–3 and the output c_{{k}} (k, the concatenation, grey edges); each edge is labelled with its op.",
            g.label
        ),
        Some(g),
        stage,
        1.3,
        Plot::Cells(vec![normal, reduce]),
    ))
}

fn test_accuracy(s: &Suite, g: &Group) -> Result<Figure> {
    let lf = of_group(&s.frames.epochs, g, "train");
    let top1 = aggregate::band(lf.clone(), "epoch", col("acc_test_top1_pct"))?;
    let train = aggregate::band(lf, "epoch", col("acc_train_pct"))?;
    let n = g.stage_runs("train").filter(|r| r.done()).count();
    let mut tr = line("train top-1", train);
    tr.dashed = true;
    Ok(figure(
        format!("test-accuracy-{}", group_slug(g)),
        format!("From-scratch training: {} ({} tier)", g.label, g.tier),
        format!(
            "Test top-1 accuracy of {} trained from scratch per epoch (and the training top-1, dashed); line = mean, band = ± std over {} finished.",
            g.label,
            seeds_text(n)
        ),
        Some(g),
        "train",
        0.5,
        Plot::Lines(vec![panel("accuracy", "epoch", "top-1 accuracy (%)", vec![line("test top-1", top1), tr])]),
    ))
}

fn grad_variance(s: &Suite) -> Result<Figure> {
    let ctx = s.ctx();
    let groups = tables::members(&ctx, "estimators");
    let mut lines = Vec::new();
    let mut smoke = false;
    for g in groups {
        let lf = of_group(&s.frames.steps, g, "search").filter(col("phase").eq(lit("search")));
        let max_step = lf
            .clone()
            .select([col("step").max().alias("m")])
            .collect()?
            .column("m")?
            .cast(&DataType::Float64)?
            .f64()?
            .get(0)
            .unwrap_or(0.0);
        let bin = ((max_step / 200.0).ceil() as i64).max(1);
        let binned =
            lf.with_column(((col("step") / lit(bin)).cast(DataType::Int64) * lit(bin)).alias("x"));
        let pts: Vec<BandPoint> = aggregate::band(binned, "x", col("grad_var_arch"))?
            .into_iter()
            .filter(|p| p.mean > 0.0)
            .map(|p| BandPoint {
                x: p.x,
                mean: p.mean.log10(),
                lo: p.lo.max(p.mean * 1e-3).log10(),
                hi: p.hi.log10(),
                n: p.n,
            })
            .collect();
        let est = g
            .config
            .search
            .as_ref()
            .map(|s| serde_name(&s.estimator))
            .unwrap_or_default();
        smoke |= g.is_smoke();
        lines.push(line(&format!("{est} ({}, {})", g.label, g.tier), pts));
    }
    let mut f = figure(
        "grad-variance".into(),
        "Architecture-gradient variance".into(),
        "Running estimate of the variance of the architecture gradient over the search phase, one line per estimator (CIFAR-10, gen-gap objective); log₁₀ scale, mean (band ± std) over seeds.".into(),
        None,
        "search",
        0.5,
        Plot::Lines(vec![panel("", "search step", "log₁₀ arch.-gradient variance", lines)]),
    );
    f.smoke = smoke;
    Ok(f)
}

fn accuracy_latency(s: &Suite) -> Result<Figure> {
    let groups: Vec<&Group> = s
        .groups
        .iter()
        .filter(|g| tables::family(&g.config) == Some(Family::Proxyless))
        .collect();
    let searched = groups
        .iter()
        .any(|g| g.stage_runs("search").any(|r| r.done()));
    let smoke = groups.iter().any(|g| g.is_smoke());
    let mut points = Vec::new();
    for g in &groups {
        let df = of_group(&s.frames.summary, g, "train")
            .filter(
                col("lat_ms")
                    .is_not_null()
                    .and(col("acc_test_top1_pct").is_not_null()),
            )
            .select([col("lat_ms"), col("acc_test_top1_pct")])
            .collect()?;
        let (x, y) = (
            df.column("lat_ms")?.f64()?,
            df.column("acc_test_top1_pct")?.f64()?,
        );
        for (x, y) in (0..x.len()).map(|i| (x.get(i), y.get(i))) {
            if let (Some(x), Some(y)) = (x, y) {
                points.push(ScatterPoint { x, y });
            }
        }
    }
    let plot = if !searched {
        Plot::Empty("ProxylessNAS search: no runs yet".into())
    } else if points.is_empty() {
        Plot::Empty("no trained network with a measured latency yet".into())
    } else {
        Plot::Pareto {
            x_label: "latency (ms, on the device named)".into(),
            y_label: "top-1 accuracy (%)".into(),
            points,
        }
    };
    let mut f = figure(
        "accuracy-latency".into(),
        "Accuracy against latency (ProxylessNAS space)".into(),
        "ImageNet top-1 accuracy of the trained networks against their measured latency, with the Pareto front; shown as “no runs yet” until the ProxylessNAS search has run.".into(),
        None,
        "train",
        0.6,
        plot,
    );
    f.smoke = smoke;
    Ok(f)
}

/// One finished training as a point: (parameters in M, latency in ms where measured, test error %).
type Trained = (f64, Option<f64>, f64);

fn trained_points(s: &Suite, g: &Group) -> Result<Vec<Trained>> {
    let df = of_group(&s.frames.summary, g, "train")
        .select([
            col("params_m").cast(DataType::Float64).alias("p"),
            col("lat_ms").cast(DataType::Float64).alias("l"),
            (lit(100.0) - col("acc_test_top1_pct").cast(DataType::Float64)).alias("e"),
        ])
        .collect()?;
    let (p, l, e) = (
        df.column("p")?.f64()?,
        df.column("l")?.f64()?,
        df.column("e")?.f64()?,
    );
    Ok((0..df.height())
        .filter_map(|i| Some((p.get(i)?, l.get(i), e.get(i)?)))
        .collect())
}

/// Per paper table and tier: every finished training as a point, parameters (in the ProxylessNAS
/// space latency, where every point has one) against test error; the random architectures as one
/// grey cloud, every other experiment its own marker. One tier per figure: runs of two tiers are
/// never drawn together.
fn architectures(s: &Suite) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    for (f, table, dataset) in [
        (Family::Cifar10, "cifar10", "CIFAR-10"),
        (Family::Cifar100, "cifar100", "CIFAR-100"),
        (
            Family::ImagenetDarts,
            "imagenet_darts",
            "ImageNet (DARTS space)",
        ),
        (
            Family::Proxyless,
            "proxyless",
            "ImageNet (ProxylessNAS space)",
        ),
    ] {
        let groups: Vec<&Group> = s
            .groups
            .iter()
            .filter(|g| g.config.sweep_of.is_none() && g.config.train.is_some())
            .filter(|g| tables::family(&g.config) == Some(f))
            .collect();
        let mut tiers: Vec<&str> = groups.iter().map(|g| g.tier.as_str()).collect();
        tiers.sort();
        tiers.dedup();
        for tier in tiers {
            let mut sets: Vec<(&Group, Vec<Trained>)> = Vec::new();
            for g in groups.iter().filter(|g| g.tier == tier) {
                let pts = trained_points(s, g)?;
                if !pts.is_empty() {
                    sets.push((g, pts));
                }
            }
            if sets.is_empty() {
                continue;
            }
            let by_latency =
                f == Family::Proxyless && sets.iter().all(|(_, p)| p.iter().all(|t| t.1.is_some()));
            let x_label = if by_latency {
                "latency (ms, on the device named)"
            } else {
                "parameters (M)"
            };
            let sets: Vec<PointSet> = sets
                .into_iter()
                .map(|(g, pts)| PointSet {
                    label: if g.config.trains_random() {
                        format!("random ({})", g.label)
                    } else {
                        g.label.clone()
                    },
                    points: pts
                        .iter()
                        .map(|&(p, l, e)| ScatterPoint {
                            x: if by_latency { l.unwrap_or(p) } else { p },
                            y: e,
                        })
                        .collect(),
                    cloud: g.config.trains_random(),
                })
                .collect();
            let mut fig = figure(
                format!("architectures-{}-{}", slug(table), slug(tier)),
                format!("Trained architectures: {dataset} ({tier} tier)"),
                format!(
                    "Every network trained from scratch for the `{table}` table at the {tier} tier, {} against test error (lower left is better): the architectures drawn uniformly from the space as one grey cloud, every other experiment (search method, ablation or published cell) its own marker; one point per training run.",
                    if by_latency { "latency" } else { "parameters" }
                ),
                None,
                "train",
                0.6,
                Plot::Scatter {
                    x_label: x_label.into(),
                    y_label: if f == Family::Proxyless || f == Family::ImagenetDarts {
                        "top-1 test error (%)".into()
                    } else {
                        "test error (%)".into()
                    },
                    sets,
                },
            );
            fig.smoke = tier == "smoke";
            out.push(fig);
        }
    }
    Ok(out)
}

fn seed_spread(s: &Suite, table: &str) -> Result<Option<Figure>> {
    let ctx = s.ctx();
    let groups = tables::members(&ctx, table);
    if groups.is_empty() {
        return Ok(None);
    }
    let (value, y_label) = if table == "proxyless" {
        (col("acc_test_top1_pct"), "test top-1 accuracy (%)")
    } else {
        (lit(100.0) - col("acc_test_top1_pct"), "test error (%)")
    };
    let mut points = Vec::new();
    let mut cats = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        cats.push(format!("{} [{}]", g.label, g.tier));
        let df = of_group(&s.frames.summary, g, "train")
            .select([value.clone().alias("v")])
            .collect()?;
        let v = df.column("v")?.f64()?;
        for v in (0..v.len()).filter_map(|i| v.get(i)) {
            points.push(BandPoint {
                x: i as f64,
                mean: v,
                lo: v,
                hi: v,
                n: 1,
            });
        }
    }
    let smoke = groups.iter().any(|g| g.is_smoke());
    let mut p = panel(
        "",
        "",
        y_label,
        vec![line("one trained network per seed", points)],
    );
    p.x_categories = cats;
    p.dots = true;
    let mut f = figure(
        format!("seed-spread-{table}"),
        format!("Seed spread: {table}"),
        format!("Every finished training run behind the rows of the `{table}` table, one dot per (search seed, train seed)."),
        None,
        "train",
        0.5,
        Plot::Lines(vec![p]),
    );
    f.smoke = smoke;
    f.table = Some(table.to_owned());
    Ok(Some(f))
}

/// A sweep over its first key: one line per combination of the other keys' values, each point the
/// test error (mean ± std over seeds) of that variant, or its search-time validation accuracy where
/// nothing was trained. Values that are not numbers are placed as categories.
fn sweep_figure(s: &Suite, sw: &tables::sweep::Sweep) -> Figure {
    use super::super::evidence::Metric;
    let ctx = s.ctx();
    let trains = sw.points.iter().any(|(_, g)| g.config.train.is_some());
    let (metric, y_label) = if trains {
        (Metric::TestErr, "test error (%)")
    } else {
        (Metric::SearchValAcc, "search val. accuracy (%)")
    };
    let numeric = sw.points.iter().all(|(v, _)| v[0].as_f64().is_some());
    let mut cats: Vec<String> = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    for (values, g) in &sw.points {
        let x = match values[0].as_f64() {
            Some(x) if numeric => x,
            _ => {
                let c = tables::sweep::show(&values[0]);
                if !cats.contains(&c) {
                    cats.push(c.clone());
                }
                cats.iter().position(|k| *k == c).unwrap_or(0) as f64
            }
        };
        let label: Vec<String> = sw.keys[1..]
            .iter()
            .zip(&values[1..])
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    k.rsplit('.').next().unwrap_or(k),
                    tables::sweep::show(v)
                )
            })
            .collect();
        let label = if label.is_empty() {
            y_label.to_owned()
        } else {
            label.join(", ")
        };
        let Some(st) = ctx.evidence(g).stat(metric) else {
            continue;
        };
        let sd = st.std.unwrap_or(0.0);
        let p = BandPoint {
            x,
            mean: st.mean,
            lo: st.mean - sd,
            hi: st.mean + sd,
            n: st.n,
        };
        match lines.iter_mut().find(|l| l.label == label) {
            Some(l) => l.points.push(p),
            None => lines.push(line(&label, vec![p])),
        }
    }
    let x_label = sw.keys[0].clone();
    let mut p = panel("", &x_label, y_label, lines);
    if !numeric {
        p.x_categories = cats;
    }
    let mut f = figure(
        sw.name(),
        format!("Sweep: {} over {} ({} tier)", sw.of, sw.keys[0], sw.tier),
        format!(
            "The sweep of {} over {}: {} of every variant (line = mean, band = ± std over seeds); the table `{}` has the numbers.",
            sw.of,
            sw.keys.join(" × "),
            y_label,
            sw.name()
        ),
        None,
        if trains { "train" } else { "search" },
        0.5,
        Plot::Lines(vec![p]),
    );
    f.smoke = sw.points.iter().any(|(_, g)| g.is_smoke());
    f.table = Some(sw.name());
    f
}

/// Every figure, in a stable order.
pub(crate) fn all(s: &Suite) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    for g in &s.groups {
        if g.config.search.is_some() {
            out.push(search_curves(s, g)?);
            out.push(arch_heatmap(s, g)?);
            out.extend(cells(g, "search"));
        }
        if g.config.train.is_some() {
            out.push(test_accuracy(s, g)?);
            if !g.config.trains_searched() && g.config.space.name != "proxyless" {
                out.extend(cells(g, "train"));
            }
        }
    }
    out.push(grad_variance(s)?);
    out.push(accuracy_latency(s)?);
    out.extend(architectures(s)?);
    for t in tables::NAMES {
        if t != "status" {
            out.extend(seed_spread(s, t)?);
        }
    }
    for sw in tables::sweep::sweeps(&s.ctx()) {
        out.push(sweep_figure(s, &sw));
    }
    Ok(out)
}
