//! A rank's share of every batch: with `sub_batches: G` over R ranks, rank r computes slices
//! [r·G/R, (r+1)·G/R) of each batch (slice g covers rows [⌊g·n/G⌋, ⌊(g+1)·n/G⌋), as
//! [`Batch::split`]), so it loads and decodes only those rows. The other rows of its batch are
//! placeholders (zero pixels, the true labels): the batch keeps its full size n, so the loops split it,
//! draw per-example samples for it and assemble its vectors exactly as one process does.
//!
//! An unreadable JPEG is skipped, which moves the slice boundaries of the whole batch. The ranks
//! therefore agree on the unreadable rows of every folder batch ([`settle`], one all-reduce of a
//! mask of n), drop them all, and decode the few rows their slices gained that they had not decoded:
//! every rank ends with the rows one process would have given its slices.

use std::ops::Range;

use anyhow::Result;
use tch::{Kind, Tensor};

use super::loader::Batch;

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

/// Batch `b` as one process would have given this rank's slices: with the rows any rank could not
/// read dropped (`agree` sums the mask of unreadable rows over the ranks, in place), and the rows
/// this rank's slices gained decoded with `decode(epoch, index, rows)` (rows of the nominal batch,
/// in order). A batch with nothing pending is returned as it is.
pub fn settle(
    mut b: Batch,
    agree: impl FnOnce(&Tensor) -> Result<()>,
    decode: impl FnOnce(u64, usize, &[i64]) -> Result<Batch>,
) -> Result<Batch> {
    let Some(p) = b.pending.take() else {
        return Ok(b);
    };
    let n = b.labels.size()[0];
    let mut mask = Tensor::zeros([n], (Kind::Float, b.labels.device()));
    if !p.unreadable.is_empty() {
        let rows = Tensor::from_slice(&p.unreadable).to_device(mask.device());
        let _ = mask.index_fill_(0, &rows, 1.0);
    }
    agree(&mask)?;
    let mask = Vec::<f32>::try_from(&mask)?;
    let kept: Vec<i64> = (0..n).filter(|&i| mask[i as usize] == 0.0).collect();
    if kept.len() as i64 == n {
        return Ok(b);
    }
    let dev = b.images.device();
    let idx = Tensor::from_slice(&kept).to_device(dev);
    let mut out = Batch {
        images: b.images.index_select(0, &idx),
        labels: b.labels.index_select(0, &idx),
        pending: None,
    };
    // the rows of the settled batch this rank's slices cover, and which of them it lacks
    let wanted = p.share.rows(kept.len());
    let (at, rows): (Vec<i64>, Vec<i64>) = wanted
        .map(|j| (j as i64, kept[j]))
        .filter(|&(_, r)| !p.decoded.contains(&(r as usize)))
        .unzip();
    if !rows.is_empty() {
        let extra = decode(p.epoch, p.index, &rows)?;
        let at = Tensor::from_slice(&at).to_device(dev);
        let _ = out.images.index_copy_(0, &at, &extra.images);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
