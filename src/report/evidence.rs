//! What a group's runs say, stage by stage: the numbers (each a [`Stat`] over seeds, chosen by the
//! experiment's `protocol`) and the marks — every expected run that failed, diverged, is missing, is
//! still running or was blocked by its failed search — so that no cell silently drops a seed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use polars::prelude::*;

use crate::config::Protocol;

use super::aggregate::{self, Best, Stat};
use super::frames::Frames;
use super::scan::{Group, Run};
use crate::results::State;

/// One run that did not give a number, and why (for the cell's mark and the footnote).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Gap {
    pub stage: &'static str,
    pub seed: u64,
    pub kind: GapKind,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum GapKind {
    Failed,
    Diverged,
    Running,
    Missing,
    Blocked,
}

impl GapKind {
    pub(crate) fn word(self) -> &'static str {
        match self {
            GapKind::Failed => "failed",
            GapKind::Diverged => "diverged",
            GapKind::Running => "running",
            GapKind::Missing => "missing",
            GapKind::Blocked => "blocked",
        }
    }
}

/// The metrics a table can show, each with the stage it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Metric {
    /// Final search-time validation top-1, %.
    SearchValAcc,
    /// Search wall-clock hours on the recorded device.
    SearchHours,
    /// Mean architecture-gradient variance over the search phase's steps.
    GradVar,
    TestErr,
    Top5Err,
    Top1Acc,
    Top5Acc,
    ParamsM,
    MacsM,
    LatMs,
}

impl Metric {
    pub(crate) fn stage(self) -> &'static str {
        match self {
            Metric::SearchValAcc | Metric::SearchHours | Metric::GradVar => "search",
            _ => "train",
        }
    }
}

/// A group's numbers and gaps.
#[derive(Clone, Debug, Default)]
pub(crate) struct Evidence {
    pub stats: BTreeMap<Metric, Stat>,
    pub gaps: Vec<Gap>,
    /// Set under `best_of_searches_by_val`: the search whose genotype the training numbers come from.
    pub best: Option<Best>,
}

impl Evidence {
    pub(crate) fn stat(&self, m: Metric) -> Option<Stat> {
        self.stats.get(&m).copied()
    }

    /// Gaps of one stage, counted by kind.
    pub(crate) fn gap_counts(&self, stage: &str) -> BTreeMap<GapKind, usize> {
        let mut c = BTreeMap::new();
        for g in self.gaps.iter().filter(|g| g.stage == stage) {
            *c.entry(g.kind).or_default() += 1;
        }
        c
    }
}

fn gap_of(stage: &'static str, seed: u64, run: &Run) -> Option<Gap> {
    let kind = match &run.state {
        Ok(State::Done) => return None,
        Ok(State::Failed { .. }) | Err(_) => GapKind::Failed,
        Ok(State::Diverged { .. }) => GapKind::Diverged,
        Ok(State::Running | State::Interrupted { .. }) => GapKind::Running,
    };
    Some(Gap {
        stage,
        seed,
        kind,
        detail: run.detail(),
    })
}

/// Every expected run of `g` that gave no number. Searches are expected per `seeds.search`; a training
/// of the searched genotype per (search seed, train seed), one of a published genotype per train seed.
pub(crate) fn gaps(g: &Group) -> Vec<Gap> {
    let mut out = Vec::new();
    let mut unfinished_searches = BTreeSet::new();
    if g.config.search.is_some() {
        for &seed in &g.config.seeds.search {
            let runs: Vec<_> = g.stage_runs("search").filter(|r| r.seed == seed).collect();
            if runs.is_empty() {
                unfinished_searches.insert(seed);
                out.push(Gap {
                    stage: "search",
                    seed,
                    kind: GapKind::Missing,
                    detail: "no run folder (not run yet)".into(),
                });
            }
            for r in runs {
                if let Some(gap) = gap_of("search", seed, r) {
                    unfinished_searches.insert(seed);
                    out.push(gap);
                }
            }
        }
    }
    if g.config.train.is_some() {
        let train_seeds = &g.config.seeds.train;
        let trains: Vec<_> = g.stage_runs("train").collect();
        for r in &trains {
            if let Some(gap) = gap_of("train", r.seed, r) {
                out.push(gap);
            }
        }
        let (expected, blocked) = if g.config.trains_searched() {
            let searches = g.config.seeds.search.len();
            (
                searches * train_seeds.len(),
                unfinished_searches.len() * train_seeds.len(),
            )
        } else {
            (train_seeds.len(), 0)
        };
        for s in &unfinished_searches {
            if g.config.trains_searched() {
                for &t in train_seeds {
                    out.push(Gap {
                        stage: "train",
                        seed: t,
                        kind: GapKind::Blocked,
                        detail: format!("its search (seed {s}) did not finish"),
                    });
                }
            }
        }
        // A missing training cannot be tied to its search seed (nothing was written), so the count is
        // what the cell shows; the seeds are named round-robin in the footnote.
        let missing = expected.saturating_sub(trains.len() + blocked);
        for i in 0..missing {
            out.push(Gap {
                stage: "train",
                seed: train_seeds[i % train_seeds.len()],
                kind: GapKind::Missing,
                detail: "no run folder (not run yet)".into(),
            });
        }
    }
    out
}

fn metric_expr(m: Metric) -> Expr {
    match m {
        Metric::SearchValAcc => col("acc_val_pct"),
        Metric::SearchHours => col("wall_s") / lit(3600.0),
        Metric::GradVar => col("grad_var_arch"),
        Metric::TestErr => lit(100.0) - col("acc_test_top1_pct"),
        Metric::Top5Err => lit(100.0) - col("acc_test_top5_pct"),
        Metric::Top1Acc => col("acc_test_top1_pct"),
        Metric::Top5Acc => col("acc_test_top5_pct"),
        Metric::ParamsM => col("params_m"),
        Metric::MacsM => col("macs_m"),
        Metric::LatMs => col("lat_ms"),
    }
}

const METRICS: [Metric; 9] = [
    Metric::SearchValAcc,
    Metric::SearchHours,
    Metric::TestErr,
    Metric::Top5Err,
    Metric::Top1Acc,
    Metric::Top5Acc,
    Metric::ParamsM,
    Metric::MacsM,
    Metric::LatMs,
];

/// The training rows a group reports: all of them (`mean_over_searches`), or only those trained from
/// the best search by validation accuracy (`best_of_searches_by_val`).
fn train_rows(frames: &Frames, groups: &[Group], best: &BTreeMap<String, Best>) -> LazyFrame {
    let mut keep = lit(false);
    for g in groups {
        let key = g.key();
        let this = col("group").eq(lit(key.clone()));
        keep = match (g.config.protocol, best.get(&key)) {
            (Protocol::BestOfSearchesByVal, Some(b)) if g.config.trains_searched() => {
                keep.or(this.and(col("upstream_run_id").eq(lit(b.run_id.clone()))))
            }
            (Protocol::BestOfSearchesByVal, None) if g.config.trains_searched() => keep,
            _ => keep.or(this),
        };
    }
    frames
        .summary
        .clone()
        .lazy()
        .filter(col("stage").eq(lit("train")).and(keep))
}

/// The evidence of every group, keyed by [`Group::key`].
pub(crate) fn collect(frames: &Frames, groups: &[Group]) -> Result<BTreeMap<String, Evidence>> {
    let best = aggregate::best_search_by_val(&frames.summary)?;
    let searches = frames
        .summary
        .clone()
        .lazy()
        .filter(col("stage").eq(lit("search")));
    let trains = train_rows(frames, groups, &best);
    let mut out: BTreeMap<String, Evidence> = groups
        .iter()
        .map(|g| {
            let e = Evidence {
                gaps: gaps(g),
                best: match g.config.protocol {
                    Protocol::BestOfSearchesByVal => best.get(&g.key()).cloned(),
                    Protocol::MeanOverSearches => None,
                },
                ..Evidence::default()
            };
            (g.key(), e)
        })
        .collect();
    for m in METRICS {
        let lf = if m.stage() == "search" {
            searches.clone()
        } else {
            trains.clone()
        };
        for (key, stat) in aggregate::stats_by(lf, "group", metric_expr(m))? {
            if let Some(e) = out.get_mut(&key) {
                e.stats.insert(m, stat);
            }
        }
    }
    // Architecture-gradient variance: per search run the mean over its search-phase steps, then over
    // runs.
    let per_run = aggregate::per_run_mean(
        frames
            .steps
            .clone()
            .lazy()
            .filter(col("phase").eq(lit("search"))),
        col("grad_var_arch"),
    )?;
    for (key, stat) in aggregate::stats_by(per_run.lazy(), "group", col("v"))? {
        if let Some(e) = out.get_mut(&key) {
            e.stats.insert(Metric::GradVar, stat);
        }
    }
    Ok(out)
}
