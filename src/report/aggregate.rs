//! Statistics over seeds, all as polars lazy group-bys (no hand-rolled means): mean, sample standard
//! deviation (ddof 1) and the count of values per key; per-epoch bands for the curves; the best search
//! of a group by its search-time validation accuracy (never by test accuracy).

use std::collections::BTreeMap;

use anyhow::Result;
use polars::prelude::*;

/// Mean ± std over `n` values (std is `None` for a single value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stat {
    pub mean: f64,
    pub std: Option<f64>,
    pub n: u32,
}

fn f64_at(df: &DataFrame, name: &str, i: usize) -> Option<f64> {
    df.column(name).ok()?.f64().ok()?.get(i)
}

fn str_at(df: &DataFrame, name: &str, i: usize) -> Option<String> {
    let c = df.column(name).ok()?.cast(&DataType::String).ok()?;
    c.str().ok()?.get(i).map(str::to_owned)
}

fn u32_at(df: &DataFrame, name: &str, i: usize) -> Option<u32> {
    let c = df.column(name).ok()?.cast(&DataType::UInt32).ok()?;
    c.u32().ok()?.get(i)
}

/// Mean, std and count of `value` per distinct `by`, over the rows of `lf` where `value` is not null.
pub(crate) fn stats_by(lf: LazyFrame, by: &str, value: Expr) -> Result<BTreeMap<String, Stat>> {
    let df = lf
        .select([
            col(by).cast(DataType::String).alias("key"),
            value.alias("v"),
        ])
        .filter(col("v").is_not_null())
        .group_by([col("key")])
        .agg([
            col("v").mean().alias("mean"),
            col("v").std(1).alias("std"),
            col("v").count().alias("n"),
        ])
        .collect()?;
    let mut out = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(k), Some(mean), Some(n)) = (
            str_at(&df, "key", i),
            f64_at(&df, "mean", i),
            u32_at(&df, "n", i),
        ) else {
            continue;
        };
        let std = f64_at(&df, "std", i).filter(|_| n > 1);
        out.insert(k, Stat { mean, std, n });
    }
    Ok(out)
}

/// One point of a curve over seeds: the mean and the band mean ± std (or the single value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BandPoint {
    pub x: f64,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: u32,
}

/// `value` per `x` over the rows of `lf` (one row per seed and x): mean and mean ± std, sorted by x.
pub(crate) fn band(lf: LazyFrame, x: &str, value: Expr) -> Result<Vec<BandPoint>> {
    let df = lf
        .select([col(x).cast(DataType::Float64).alias("x"), value.alias("v")])
        .filter(col("v").is_not_null().and(col("v").is_finite()))
        .group_by([col("x")])
        .agg([
            col("v").mean().alias("mean"),
            col("v").std(1).alias("std"),
            col("v").count().alias("n"),
        ])
        .sort(["x"], SortMultipleOptions::default())
        .collect()?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let (Some(x), Some(mean), Some(n)) = (
            f64_at(&df, "x", i),
            f64_at(&df, "mean", i),
            u32_at(&df, "n", i),
        ) else {
            continue;
        };
        let s = f64_at(&df, "std", i).filter(|_| n > 1).unwrap_or(0.0);
        out.push(BandPoint {
            x,
            mean,
            lo: mean - s,
            hi: mean + s,
            n,
        });
    }
    Ok(out)
}

/// The search a best-of-N protocol reports: the highest final search-time validation accuracy.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Best {
    pub run_id: String,
    pub seed: i64,
    pub acc_val_pct: f64,
    /// How many finished searches it was chosen from.
    pub of: u32,
}

/// Per group, the finished search with the highest `acc_val_pct` in the summary table.
pub(crate) fn best_search_by_val(summary: &DataFrame) -> Result<BTreeMap<String, Best>> {
    let df = summary
        .clone()
        .lazy()
        .filter(
            col("stage")
                .eq(lit("search"))
                .and(col("acc_val_pct").is_not_null()),
        )
        .sort(
            ["acc_val_pct"],
            SortMultipleOptions::default().with_order_descending(true),
        )
        .group_by_stable([col("group")])
        .agg([
            col("run_id").first().alias("run_id"),
            col("seed").first().alias("seed"),
            col("acc_val_pct").first().alias("acc_val_pct"),
            col("acc_val_pct").count().alias("of"),
        ])
        .collect()?;
    let mut out = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(g), Some(run_id), Some(acc), Some(of)) = (
            str_at(&df, "group", i),
            str_at(&df, "run_id", i),
            f64_at(&df, "acc_val_pct", i),
            u32_at(&df, "of", i),
        ) else {
            continue;
        };
        let seed = str_at(&df, "seed", i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        out.insert(
            g,
            Best {
                run_id,
                seed,
                acc_val_pct: acc,
                of,
            },
        );
    }
    Ok(out)
}

/// Per run (`run_id`), the mean of `value` over the rows of `lf`: a per-run number from a per-step table.
pub(crate) fn per_run_mean(lf: LazyFrame, value: Expr) -> Result<DataFrame> {
    Ok(lf
        .select([col("group"), col("run_id"), value.alias("v")])
        .filter(col("v").is_not_null().and(col("v").is_finite()))
        .group_by([col("group"), col("run_id")])
        .agg([col("v").mean().alias("v")])
        .collect()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        df![
            "group" => ["a", "a", "a", "b"],
            "x" => [1.0, 2.0, 4.0, 10.0],
        ]
        .unwrap()
    }

    #[test]
    fn stats_are_mean_sample_std_and_count_per_key() {
        let s = stats_by(frame().lazy(), "group", col("x")).unwrap();
        let a = s["a"];
        assert!((a.mean - 7.0 / 3.0).abs() < 1e-12);
        // sample variance of 1, 2, 4: ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3
        assert!((a.std.unwrap() - (7.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(a.n, 3);
        assert_eq!(
            s["b"],
            Stat {
                mean: 10.0,
                std: None,
                n: 1
            }
        );
    }

    #[test]
    fn the_best_search_is_chosen_by_validation_accuracy() {
        let summary = df![
            "group" => ["g", "g", "g"],
            "stage" => ["search", "search", "train"],
            "seed" => [0i64, 1, 0],
            "run_id" => ["s0", "s1", "t0"],
            "acc_val_pct" => [Some(50.0), Some(60.0), None],
            "acc_test_top1_pct" => [None, None, Some(99.0)],
        ]
        .unwrap();
        let b = &best_search_by_val(&summary).unwrap()["g"];
        assert_eq!((b.run_id.as_str(), b.seed, b.of), ("s1", 1, 2));
    }
}
