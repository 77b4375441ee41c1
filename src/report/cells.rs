//! The text of one table cell: mean ± std over seeds with N, the marks of every run that gave no
//! number (`1 failed`, `1 missing`, ...), and the tier of a number that is not paper-tier
//! (`[smoke]`, `[quick]`). An empty cell means no run exists; nothing is ever guessed.

use std::collections::BTreeMap;

use super::aggregate::Stat;
use super::evidence::GapKind;

/// `2.91 ± 0.12 (N=4)`, `2.91 (N=1)`, `— (N=0; 1 failed)`, or empty.
pub(crate) fn stat(
    s: Option<Stat>,
    decimals: usize,
    gaps: &BTreeMap<GapKind, usize>,
    tier: &str,
) -> String {
    let marks: Vec<String> = gaps
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {}", k.word()))
        .collect();
    let marks = if marks.is_empty() {
        String::new()
    } else {
        format!("; {}", marks.join(", "))
    };
    let body = match s {
        Some(Stat {
            mean,
            std: Some(sd),
            n,
        }) => format!("{mean:.decimals$} ± {sd:.decimals$} (N={n}{marks})"),
        Some(Stat { mean, std: None, n }) => format!("{mean:.decimals$} (N={n}{marks})"),
        None if !marks.is_empty() => format!("— (N=0{marks})"),
        None => return String::new(),
    };
    match tier {
        "paper" | "" => body,
        t => format!("{body} [{t}]"),
    }
}

/// A published number: `2.76 ± 0.09 (N=10)`, `2.63 (best)`, `26.7`.
pub(crate) fn published(value: f64, std: Option<f64>, runs: Option<u32>, best: bool) -> String {
    // As the source wrote it, but `72.0`, not `72`.
    let num = |v: f64| {
        if v.fract() == 0.0 {
            format!("{v:.1}")
        } else {
            format!("{v}")
        }
    };
    let mut s = match std {
        Some(sd) => format!("{} ± {}", num(value), num(sd)),
        None => num(value),
    };
    if let Some(n) = runs {
        s.push_str(&format!(" (N={n})"));
    }
    if best {
        s.push_str(" (best)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(list: &[(GapKind, usize)]) -> BTreeMap<GapKind, usize> {
        list.iter().copied().collect()
    }

    #[test]
    fn a_cell_shows_mean_std_n_marks_and_tier() {
        let s = Some(Stat {
            mean: 2.914,
            std: Some(0.1234),
            n: 3,
        });
        assert_eq!(stat(s, 2, &gaps(&[]), "paper"), "2.91 ± 0.12 (N=3)");
        assert_eq!(
            stat(
                s,
                2,
                &gaps(&[(GapKind::Failed, 1), (GapKind::Missing, 2)]),
                "smoke"
            ),
            "2.91 ± 0.12 (N=3; 1 failed, 2 missing) [smoke]"
        );
        let one = Some(Stat {
            mean: 1.0,
            std: None,
            n: 1,
        });
        assert_eq!(stat(one, 1, &gaps(&[]), "quick"), "1.0 (N=1) [quick]");
        assert_eq!(
            stat(None, 1, &gaps(&[(GapKind::Diverged, 1)]), "paper"),
            "— (N=0; 1 diverged)"
        );
        assert_eq!(stat(None, 1, &gaps(&[]), "paper"), "");
    }
}
