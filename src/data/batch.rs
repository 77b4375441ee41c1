//! A batch, and a rank's share of it: with `sub_batches: G` over R ranks, rank r computes slices
//! [r·G/R, (r+1)·G/R) of each batch (slice g covers rows [⌊g·n/G⌋, ⌊(g+1)·n/G⌋), as
//! [`Batch::split`]), so it loads and decodes only those rows. The other rows of its batch are
//! placeholders (zero pixels, the true labels): the batch keeps its full size n, so the loops split it,
//! draw per-example samples for it and assemble their vectors exactly as one process does. A folder
//! batch stays [`Pending`] until the ranks have agreed on its unreadable images
//! ([`settle`](super::share::settle)).

use std::ops::Range;

use tch::Tensor;

/// One batch on the run's device: `images` float `[B,3,H,W]` normalised, `labels` int64 `[B]`. A
/// source with a [`Share`] fills only the rows of its slices (the others are zeros), and a folder
/// batch is `pending` until the ranks have agreed on its unreadable images ([`settled`]).
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
    pub pending: Option<Pending>,
}

impl Batch {
    /// Examples [start, start + len) of the batch.
    pub fn narrow(&self, start: i64, len: i64) -> Batch {
        Batch {
            images: self.images.narrow(0, start, len),
            labels: self.labels.narrow(0, start, len),
            pending: None,
        }
    }

    /// `parts` consecutive sub-batches whose sizes differ by at most one (a batch that lost an
    /// unreadable image still splits into `parts`); `parts` must not exceed the batch size.
    pub fn split(&self, parts: i64) -> Vec<Batch> {
        let n = self.images.size()[0];
        (0..parts)
            .map(|g| {
                // part g covers [⌊g·n/P⌋, ⌊(g+1)·n/P⌋)
                let (a, b) = (g * n / parts, (g + 1) * n / parts);
                self.narrow(a, b - a)
            })
            .collect()
    }
}

/// The slices `own` (of `groups`) of every batch this process computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub own: Range<usize>,
    pub groups: usize,
}

impl Share {
    /// The rows of a batch of `n` that slices `own` cover; all of them when the batch has fewer rows
    /// than slices (the loops then run it whole, as one slice, on every rank).
    pub fn rows(&self, n: usize) -> Range<usize> {
        if n < self.groups || self.groups == 0 {
            return 0..n;
        }
        self.own.start * n / self.groups..self.own.end * n / self.groups // ⌊g·n/G⌋
    }

    /// Every row: one process computing every slice.
    pub fn whole(&self) -> bool {
        self.own.start == 0 && self.own.end >= self.groups
    }
}

/// What a folder batch loaded with a [`Share`] still has to settle with the other ranks.
#[derive(Debug)]
pub struct Pending {
    pub epoch: u64,
    pub index: usize,
    pub share: Share,
    /// The rows this process decoded (`share.rows(n)` of the nominal batch).
    pub decoded: Range<usize>,
    /// Those of them it could not read.
    pub unreadable: Vec<i64>,
}

/// Rows `rows` of `full` (`[n, …]`) computed by `part` on those rows alone; the others zeros: the
/// rows of a share, in a batch of the full size.
pub fn placed(full: &[i64], rows: Range<usize>, part: &Tensor) -> Tensor {
    if rows.start == 0 && rows.end as i64 == full[0] {
        return part.shallow_clone();
    }
    let out = Tensor::zeros(full, (part.kind(), part.device()));
    out.narrow(0, rows.start as i64, rows.len() as i64)
        .copy_(part);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn a_share_covers_the_rows_of_its_slices_as_the_split_does() {
        for (n, groups) in [(16usize, 2usize), (15, 4), (8, 8), (191, 8)] {
            let b = Batch {
                images: Tensor::arange(n as i64, (Kind::Float, tch::Device::Cpu)),
                labels: Tensor::arange(n as i64, (Kind::Int64, tch::Device::Cpu)),
                pending: None,
            };
            let parts = b.split(groups as i64);
            for (g, part) in parts.iter().enumerate() {
                let s = Share {
                    own: g..g + 1,
                    groups,
                };
                let rows = s.rows(n);
                let first = part.labels.int64_value(&[0]) as usize;
                assert_eq!(rows.start, first, "{n}/{groups} slice {g}");
                assert_eq!(rows.len() as i64, part.labels.size()[0]);
            }
        }
        let two_of_four = Share {
            own: 2..4,
            groups: 4,
        };
        assert_eq!(two_of_four.rows(10), 5..10);
        assert_eq!(two_of_four.rows(3), 0..3, "fewer rows than slices: all");
        assert!(!two_of_four.whole());
    }
}
