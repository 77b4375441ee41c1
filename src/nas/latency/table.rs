//! `unas latency table`: every (block, op) pair of the ProxylessNAS supernet timed alone on one
//! device (each op on an input of its block's shape, batch `batch`, eval mode, synchronised, warm-up
//! then the median of `repeats`), plus the fixed stem and head; and the table-sum prediction of an
//! architecture (the lookup-table latency model ProxylessNAS uses, beside UNAS's surrogate).

use anyhow::{Context, Result};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::stamp::DeviceStamp;
use super::timing::{measure_ms, Timing};
use crate::nas::space::proxyless::search_net::{candidates, skeleton_at};
use crate::nas::space::proxyless::{ProxylessSearchConfig, ProxylessSearchNet};
use crate::results::latency_rows::LatencyTableRow;

/// Row `block` of the fixed start and of the fixed end.
pub const STEM_BLOCK: i64 = 0;
pub const HEAD_BLOCK: i64 = 22;

/// What the table measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TableSpec {
    pub width_multiplier: f64,
    pub resolution: i64,
    pub batch: i64,
    pub repeats: u32,
    pub classes: i64,
}

impl TableSpec {
    /// The supernet that holds every candidate of the table (weights from seed 0: latency does not
    /// depend on their values).
    pub fn supernet(&self, device: Device) -> Result<(VarStore, ProxylessSearchNet)> {
        tch::manual_seed(0);
        let vs = VarStore::new(device);
        let cfg = ProxylessSearchConfig {
            width_multiplier: self.width_multiplier,
            resolution: self.resolution,
            classes: self.classes,
            op_skip_threshold: 0.0,
            zero_dropout: 0.0,
        };
        let net = ProxylessSearchNet::new(&vs.root(), &cfg)?;
        Ok((vs, net))
    }

    /// A random batch at the table's resolution.
    pub fn input(&self, device: Device) -> Tensor {
        let r = self.resolution;
        Tensor::randn([self.batch, 3, r, r], (Kind::Float, device))
    }
}

/// Times every part; `progress(done, total)` after each.
pub fn measure(
    spec: &TableSpec,
    device: Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<LatencyTableRow>> {
    let (_vs, net) = spec.supernet(device)?;
    let stamp = DeviceStamp::of(device);
    let timing = Timing {
        warmup: 2,
        repeats: spec.repeats,
    };
    let ((_, first_c, head_c), skeleton) = skeleton_at(spec.width_multiplier);
    let total = 2
        + (0..skeleton.len())
            .map(|i| candidates(i).len())
            .sum::<usize>();
    let mut rows = Vec::with_capacity(total);
    let row =
        |block: i64, op: String, io: (i64, i64, i64), side: i64, lat_ms: f64| LatencyTableRow {
            block,
            op,
            c_in: io.0,
            c_out: io.1,
            stride: io.2,
            side_px: side,
            batch: spec.batch,
            width_multiplier: spec.width_multiplier,
            lat_ms,
            device: stamp.device.clone(),
            device_name: stamp.device_name.clone(),
            driver: stamp.driver.clone(),
            libtorch: stamp.libtorch.clone(),
            threads: stamp.threads,
        };
    tch::no_grad(|| -> Result<()> {
        let x = spec.input(device);
        let ms = measure_ms(device, timing, || drop(net.stem_first(&x, false)));
        rows.push(row(
            STEM_BLOCK,
            "stem+first".into(),
            (3, first_c, 2),
            spec.resolution,
            ms,
        ));
        progress(rows.len(), total);
        let mut h = net.stem_first(&x, false);
        for (i, &(c_in, c_out, stride)) in skeleton.iter().enumerate() {
            let side = h.size()[2];
            for (k, op) in candidates(i).iter().enumerate() {
                let ms = measure_ms(device, timing, || drop(net.block_op(i, k, &h, false)));
                rows.push(row(
                    i as i64 + 1,
                    op.name(),
                    (c_in, c_out, stride),
                    side,
                    ms,
                ));
                progress(rows.len(), total);
            }
            // the next block's input: any MBConv candidate has the block's output shape
            h = net.block_op(i, candidates(i).len() - 1, &h, false);
        }
        let side = h.size()[2];
        let last = skeleton.last().context("21 blocks")?.1;
        let ms = measure_ms(device, timing, || drop(net.head(&h, false)));
        let io = (last, spec.classes, 1);
        rows.push(row(HEAD_BLOCK, "head+classifier".into(), io, side, ms));
        progress(rows.len(), total);
        let _ = head_c;
        Ok(())
    })?;
    Ok(rows)
}

/// Σ of the table's fixed parts and of the chosen op of every block (`indices` into
/// [`candidates`]); an error names a (block, op) the table lacks.
pub fn table_sum(rows: &[LatencyTableRow], indices: &[usize]) -> Result<f64> {
    let find = |block: i64, op: &str| {
        rows.iter()
            .find(|r| r.block == block && r.op == op)
            .map(|r| r.lat_ms)
            .with_context(|| format!("the latency table has no row for block {block}, op {op}"))
    };
    let mut sum = find(STEM_BLOCK, "stem+first")? + find(HEAD_BLOCK, "head+classifier")?;
    for (i, &k) in indices.iter().enumerate() {
        sum += find(i as i64 + 1, &candidates(i)[k].name())?; // Σ_b lat(b, op_b)
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_pair_and_its_sum_tracks_a_direct_measurement() {
        let spec = TableSpec {
            width_multiplier: 0.25,
            resolution: 32,
            batch: 2,
            repeats: 1,
            classes: 10,
        };
        let mut calls = 0;
        let rows = measure(&spec, Device::Cpu, |_, _| calls += 1).unwrap();
        assert_eq!(rows.len(), 2 + 6 * 6 + 15 * 7);
        assert_eq!(calls, rows.len());
        assert!(rows.iter().all(|r| r.lat_ms >= 0.0 && r.device == "cpu"));
        // the spatial side halves at the stride-2 blocks: 16 at block 1, 1 at the head (32 px)
        assert_eq!(rows.iter().find(|r| r.block == 1).unwrap().side_px, 16);
        assert_eq!(rows.last().unwrap().side_px, 1);
        let all_zero = vec![0usize; 21];
        assert!(table_sum(&rows, &all_zero).unwrap() > 0.0);
        let err = table_sum(&rows[1..], &all_zero).unwrap_err().to_string();
        assert!(err.contains("block 0"), "{err}");
    }
}
