//! The ranks settle a folder batch loaded with a [`Share`](super::batch::Share): an unreadable JPEG
//! is skipped, which moves the slice boundaries of the whole batch, so the ranks agree on the
//! unreadable rows of every folder batch ([`settle`], one all-reduce of a mask of n), drop them all,
//! and decode the few rows their slices gained that they had not decoded: every rank ends with the
//! rows one process would have given its slices.

use anyhow::Result;
use tch::{Kind, Tensor};

use super::batch::Batch;

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
