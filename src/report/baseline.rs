//! The random-sampling baseline of a row (Yang et al., "NAS evaluation is frustratingly hard", ICLR
//! 2020): the mean test accuracy of the architectures drawn uniformly from the same space
//! (`train.genotype: random`) and trained at the same tier with the same recipe, and a row's relative
//! improvement over it. Only runs of one paper table (dataset and space), one tier and one resolved
//! training recipe are ever compared; where no such random runs finished the cell stays blank.

use super::evidence::Metric;
use super::scan::Group;
use super::tables::ctx::{family, Ctx};

/// The header of the RI column of every table that has one.
pub(crate) const RI_COLUMN: &str = "RI vs random (%)";

/// RI = 100 × (acc_method − acc_random) / acc_random, accuracies in %.
pub(crate) fn relative_improvement(acc_method: f64, acc_random: f64) -> f64 {
    100.0 * (acc_method - acc_random) / acc_random
}

/// The random architectures a row is measured against.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Baseline {
    /// Mean test top-1 accuracy (%) over every finished random training.
    pub acc_pct: f64,
    /// How many random trainings the mean is over.
    pub n: u32,
    /// The experiments they come from.
    pub labels: Vec<String>,
}

/// Whether `a` and `b` may be compared: same paper table, same tier, same resolved training recipe.
fn comparable(a: &Group, b: &Group) -> bool {
    let recipe = |g: &Group| g.config.train.as_ref().map(|t| t.recipe_fields());
    family(&a.config).is_some()
        && family(&a.config) == family(&b.config)
        && a.tier == b.tier
        && recipe(a).is_some()
        && recipe(a) == recipe(b)
}

/// The random groups `g` is compared with, and their pooled mean accuracy Σ nᵢ·meanᵢ / Σ nᵢ (the mean
/// over every finished random training); `None` where no random training of the same table, tier
/// and recipe finished.
pub(crate) fn baseline(ctx: &Ctx, g: &Group) -> Option<Baseline> {
    let (mut sum, mut n, mut labels) = (0.0, 0u32, Vec::new());
    for r in ctx.groups.iter().filter(|r| r.config.trains_random()) {
        if !comparable(g, r) {
            continue;
        }
        if let Some(s) = ctx.evidence(r).stat(Metric::Top1Acc) {
            sum += s.mean * f64::from(s.n);
            n += s.n;
            labels.push(r.label.clone());
        }
    }
    (n > 0).then(|| Baseline {
        acc_pct: sum / f64::from(n),
        n,
        labels,
    })
}

/// The RI cell of `g` with two decimals and its sign (`+6.04`); blank for a random row itself, for
/// a row without a finished training, and where there is no baseline.
pub(crate) fn cell(ctx: &Ctx, g: &Group) -> String {
    if g.config.trains_random() {
        return String::new();
    }
    match (ctx.evidence(g).stat(Metric::Top1Acc), baseline(ctx, g)) {
        (Some(acc), Some(b)) => format!("{:+.2}", relative_improvement(acc.mean, b.acc_pct)),
        _ => String::new(),
    }
}

/// The footnote that says what the RI column of a table is measured against: the formula, then
/// every baseline the rows use (once each).
pub(crate) fn note(ctx: &Ctx, groups: &[&Group]) -> String {
    let mut against: Vec<String> = Vec::new();
    for g in groups.iter().filter(|g| !g.config.trains_random()) {
        if let Some(b) = baseline(ctx, g) {
            let s = format!(
                "{} tier: {:.2} % over {} random architecture{} ({})",
                g.tier,
                b.acc_pct,
                b.n,
                if b.n == 1 { "" } else { "s" },
                b.labels.join(", ")
            );
            if !against.contains(&s) {
                against.push(s);
            }
        }
    }
    let base = "RI = 100 × (acc − acc_random) / acc_random (%), against the mean test top-1 accuracy of the architectures drawn uniformly from the space and trained at the same tier with the same recipe (Yang et al., ICLR 2020); blank where none finished";
    if against.is_empty() {
        format!("{base}.")
    } else {
        format!("{base}. Baselines: {}.", against.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_improvement_is_the_percentage_gain_over_the_random_mean() {
        assert_eq!(relative_improvement(96.5, 91.0), 100.0 * 5.5 / 91.0);
        assert_eq!(relative_improvement(50.0, 50.0), 0.0);
        assert!(relative_improvement(40.0, 50.0) < 0.0);
    }
}
