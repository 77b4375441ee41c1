//! `unas bench space --space darts`: forward+backward throughput of the CIFAR search supernet, relaxed
//! forward vs the discrete fast path, with one architecture per example or one per batch. Architectures
//! are Gumbel-softmax samples (τ = 0.4) of the uniform distribution, fresh each step.

use std::time::Instant;

use anyhow::{ensure, Result};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::search_net::{DartsSearchConfig, DartsSearchNet};
use crate::nas::arch::{CellSample, DartsSample, SampleKind};

/// Size of the benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub batch: i64,
    pub steps: usize,
    pub channels: i64,
    pub layers: i64,
    pub device: Device,
}

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct BenchRow {
    pub kind: SampleKind,
    pub per_example: bool,
    pub images_per_s: f64,
    pub ms_per_step: f64,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Runs the four configurations (relaxed / discrete × per-example / per-batch).
pub fn measure(opts: &BenchOptions) -> Result<Vec<BenchRow>> {
    ensure!(
        opts.steps > 0 && opts.batch > 0,
        "--steps and --batch must be positive"
    );
    let vs = VarStore::new(opts.device);
    let cfg = DartsSearchConfig {
        channels: opts.channels,
        layers: opts.layers,
        ..DartsSearchConfig::cifar(10)
    };
    let net = DartsSearchNet::new(&vs.root(), &cfg)?;
    let k = cfg.num_ops as i64;
    let x = Tensor::randn([opts.batch, 3, 32, 32], (Kind::Float, opts.device));
    let y = Tensor::randint(10, [opts.batch], (Kind::Int64, opts.device));
    let configs: Vec<(bool, SampleKind)> = [true, false]
        .into_iter()
        .flat_map(|pe| [(pe, SampleKind::Relaxed), (pe, SampleKind::OneHot)])
        .collect();
    let step = |per_example: bool, kind: SampleKind| {
        let n = if per_example { opts.batch } else { 1 };
        let sample = DartsSample {
            normal: CellSample::random(n, k, kind, opts.device),
            reduce: CellSample::random(n, k, kind, opts.device),
        };
        let loss = net
            .forward(&x, &sample, kind, true)
            .cross_entropy_for_logits(&y);
        loss.backward();
    };
    // round-robin over the configurations, so that a load change on a shared machine hits all alike;
    // the median step time of each is reported
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for round in 0..=opts.steps {
        for (c, &(per_example, kind)) in configs.iter().enumerate() {
            sync(opts.device);
            let start = Instant::now();
            step(per_example, kind);
            sync(opts.device);
            if round > 0 {
                // round 0 warms up
                times[c].push(start.elapsed().as_secs_f64());
            }
        }
    }
    let rows = configs
        .iter()
        .zip(times)
        .map(|(&(per_example, kind), mut t)| {
            t.sort_by(f64::total_cmp);
            let median = t[t.len() / 2];
            BenchRow {
                kind,
                per_example,
                images_per_s: opts.batch as f64 / median,
                ms_per_step: median * 1e3,
            }
        })
        .collect();
    Ok(rows)
}

/// Prints the table and the cost ratio discrete/relaxed for each weighting.
pub fn run(opts: &BenchOptions) -> Result<()> {
    println!(
        "DARTS search supernet, CIFAR, L={} C={} batch={} steps={} device={:?}: forward+backward",
        opts.layers, opts.channels, opts.batch, opts.steps, opts.device
    );
    let rows = measure(opts)?;
    println!(
        "{:<12} {:<9} {:>10} {:>15}",
        "weights", "path", "img/s", "median ms/step"
    );
    for r in &rows {
        println!(
            "{:<12} {:<9} {:>10.1} {:>15.1}",
            if r.per_example {
                "per-example"
            } else {
                "per-batch"
            },
            match r.kind {
                SampleKind::Relaxed => "relaxed",
                SampleKind::OneHot => "discrete",
                SampleKind::Dense => "dense",
            },
            r.images_per_s,
            r.ms_per_step
        );
    }
    for per_example in [true, false] {
        let t = |kind| {
            rows.iter()
                .find(|r| r.kind == kind && r.per_example == per_example)
                .map(|r| r.ms_per_step)
                .unwrap_or(f64::NAN)
        };
        println!(
            "cost ratio discrete/relaxed ({}): {:.3}",
            if per_example {
                "per-example"
            } else {
                "per-batch"
            },
            t(SampleKind::OneHot) / t(SampleKind::Relaxed)
        );
    }
    Ok(())
}
