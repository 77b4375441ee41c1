//! The official 4-GPU CIFAR search on one device: a step over 4 sub-batches of B/4 examples, one
//! architecture per example, equals 4 separate B/4-image steps averaged (DDP averages the GPUs'
//! gradients; each GPU's BatchNorm and op-skip see only its own sub-batch).

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::arch_per::ArchPer;
use super::arch_step::per_sub_batch;
use super::weight_step::weight_gradient;
use crate::config;
use crate::data::loader::Batch;
use crate::dist::Ranks;
use crate::nas::arch::SampleKind;
use crate::nas::distribution::Sampler;
use crate::nas::space::darts::{DartsSearch, DartsSearchConfig, StemKind};
use crate::nas::space::SearchSpace;

const B: i64 = 16;
const G: i64 = 4;

fn tiny_space() -> (VarStore, DartsSearch) {
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let cfg = DartsSearchConfig {
        stem: StemKind::Cifar,
        layers: 3,
        channels: 4,
        num_ops: 7,
        classes: 10,
        op_skip_threshold: 0.05,
    };
    let space = DartsSearch::new(&vs.root(), &cfg, 0.0).unwrap();
    (vs, space)
}

fn batch(seed: i64) -> Batch {
    tch::manual_seed(seed);
    Batch {
        images: Tensor::randn([B, 3, 16, 16], (Kind::Float, Device::Cpu)),
        labels: Tensor::randint(10, [B], (Kind::Int64, Device::Cpu)),
        pending: None,
    }
}

/// The weights' gradients after `run`, zeroed before it.
fn grads(vs: &VarStore, run: impl FnOnce()) -> Vec<Tensor> {
    let mut vars = vs.trainable_variables();
    for v in &mut vars {
        v.zero_grad();
    }
    run();
    vars.iter()
        .map(|v| {
            let g = v.grad();
            if g.defined() {
                g.copy()
            } else {
                v.zeros_like()
            }
        })
        .collect()
}

fn max_diff(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

#[test]
fn a_4x4_weight_step_equals_four_separate_4_image_steps_averaged() {
    let (vs, space) = tiny_space();
    let b = batch(1);
    let draw = space.distribution().sample(B, 0.4, Sampler::Original);
    let xs: Vec<Tensor> = draw.relaxed.iter().map(Tensor::detach).collect();
    let together = grads(&vs, || {
        let _ = weight_gradient(
            &space,
            ArchPer::Example(G),
            &b,
            &xs,
            SampleKind::Relaxed,
            &Ranks::one(),
            None,
        )
        .unwrap();
    });
    let mut separate: Vec<Tensor> = together.iter().map(Tensor::zeros_like).collect();
    for (part, rows) in ArchPer::Example(G).parts(&b, &xs) {
        assert_eq!(rows[0].size()[1], B / G);
        let g = grads(&vs, || {
            let _ = weight_gradient(
                &space,
                ArchPer::Example(1),
                &part,
                &rows,
                SampleKind::Relaxed,
                &Ranks::one(),
                None,
            )
            .unwrap();
        });
        for (acc, gi) in separate.iter_mut().zip(&g) {
            *acc += gi / G as f64;
        }
    }
    let d = max_diff(&together, &separate);
    assert!(
        d < 1e-6,
        "4 × 4 differs from four 4-image steps averaged by {d}"
    );
    // and it is not the one 16-image step: BatchNorm statistics over 4 images, not 16
    let whole = grads(&vs, || {
        let _ = weight_gradient(
            &space,
            ArchPer::Example(1),
            &b,
            &xs,
            SampleKind::Relaxed,
            &Ranks::one(),
            None,
        )
        .unwrap();
    });
    assert!(max_diff(&together, &whole) > 1e-4);
}

#[test]
fn a_4x4_objective_is_the_four_separate_4_image_objectives_side_by_side() {
    let (_vs, space) = tiny_space();
    let (b, v) = (batch(1), batch(2));
    let s: config::Search = serde_saphyr::from_str(
        "{estimator: rebar, objective: {kind: gengap}, epochs: {warmup: 1, search: 1}, batch: 16, sub_batches: 4}",
    )
    .unwrap();
    let draw = space.distribution().sample(B, 0.4, Sampler::Rebar);
    for (xs, kind) in [
        (&draw.relaxed, SampleKind::Relaxed),
        (&draw.onehot, SampleKind::OneHot),
    ] {
        let (f, gap) =
            tch::no_grad(|| per_sub_batch(&space, xs, kind, ArchPer::Example(G), &b, Some(&v), &s));
        assert_eq!(f.size(), [B]);
        let (mut fs, mut gaps) = (Vec::new(), Vec::new());
        let vals = v.split(G);
        for (g, (part, rows)) in ArchPer::Example(G).parts(&b, xs).into_iter().enumerate() {
            let (fg, gg) = tch::no_grad(|| {
                per_sub_batch(
                    &space,
                    &rows,
                    kind,
                    ArchPer::Example(1),
                    &part,
                    Some(&vals[g]),
                    &s,
                )
            });
            fs.push(fg);
            gaps.push(gg.unwrap());
        }
        let d = (&f - Tensor::cat(&fs, 0)).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{kind:?}: f differs by {d}");
        let dg = (gap.unwrap() - Tensor::cat(&gaps, 0))
            .abs()
            .max()
            .double_value(&[]);
        assert!(dg < 1e-6, "{kind:?}: the gap differs by {dg}");
        // the estimator's mean over the 16 examples is the mean of the four sub-batch means
        let whole =
            tch::no_grad(|| per_sub_batch(&space, xs, kind, ArchPer::Example(1), &b, Some(&v), &s))
                .0;
        assert!((&f - whole).abs().max().double_value(&[]) > 1e-5);
    }
}

#[test]
fn batched_train_and_val_passes_give_the_separate_passes_numbers_gradients_and_statistics() {
    let (b, v) = (batch(1), batch(2));
    let search = |batched: bool| -> config::Search {
        serde_saphyr::from_str(&format!(
            "{{estimator: rebar, objective: {{kind: gengap}}, epochs: {{warmup: 1, search: 1}}, \
             batch: 16, batched_passes: {batched}}}"
        ))
        .unwrap()
    };
    for (arch, kind) in [
        (ArchPer::Example(1), SampleKind::Relaxed),
        (ArchPer::Example(G), SampleKind::Relaxed),
        (ArchPer::Example(1), SampleKind::OneHot),
        (ArchPer::SubBatch(G), SampleKind::OneHot),
    ] {
        // two identical supernets and logits: one runs the separate passes, the other one batched
        let run = |batched: bool| {
            let (vs, space) = tiny_space();
            tch::manual_seed(5);
            let draw = space
                .distribution()
                .sample(arch.samples(&b), 0.4, Sampler::Rebar);
            let xs = if kind == SampleKind::OneHot {
                &draw.onehot
            } else {
                &draw.relaxed
            };
            let mut out = None;
            let g = grads(&vs, || {
                let (f, gap) =
                    per_sub_batch(&space, xs, kind, arch, &b, Some(&v), &search(batched));
                if kind == SampleKind::Relaxed {
                    f.mean(Kind::Float).backward();
                }
                out = Some((f.detach(), gap.unwrap().detach()));
            });
            let logit_grads: Vec<Tensor> = space
                .distribution()
                .parameters()
                .iter()
                .map(|l| {
                    if l.grad().defined() {
                        l.grad().copy()
                    } else {
                        l.zeros_like()
                    }
                })
                .collect();
            let mut stats: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            stats.sort_by(|p, q| p.0.cmp(&q.0));
            let (f, gap) = out.unwrap();
            (f, gap, g, logit_grads, stats)
        };
        let (f0, gap0, w0, a0, s0) = run(false);
        let (f1, gap1, w1, a1, s1) = run(true);
        let what = format!("{arch:?} {kind:?}");
        let close = |x: &Tensor, y: &Tensor| (x - y).abs().max().double_value(&[]);
        assert!(
            close(&f0, &f1) < 1e-5,
            "{what}: f differs by {}",
            close(&f0, &f1)
        );
        assert!(close(&gap0, &gap1) < 1e-5, "{what}: the gap differs");
        assert!(
            max_diff(&w0, &w1) < 1e-5,
            "{what}: weight gradients differ by {}",
            max_diff(&w0, &w1)
        );
        assert!(
            max_diff(&a0, &a1) < 1e-5,
            "{what}: logit gradients differ by {}",
            max_diff(&a0, &a1)
        );
        if kind == SampleKind::Relaxed {
            assert!(a0
                .iter()
                .any(|g| g.abs().sum(Kind::Float).double_value(&[]) > 0.0));
        }
        for ((name, x), (_, y)) in s0.iter().zip(&s1) {
            assert!(
                close(x, y) < 1e-5,
                "{what}: {name} differs by {}",
                close(x, y)
            );
        }
    }
}

#[test]
fn the_validation_iterator_restarts_in_the_order_of_global_step_plus_seed() {
    use super::arch_step::{next_val, restart_val};
    use crate::data::loader::{epoch_order, Batching, Loader, LoaderState, ResidentSource};
    use crate::data::{AugmentSpec, Normalization, TensorSplit};
    let split = TensorSplit {
        images: Tensor::zeros([6, 3, 4, 4], (Kind::Uint8, Device::Cpu)),
        labels: Tensor::arange(6, (Kind::Int64, Device::Cpu)),
    };
    let batching = Batching {
        batch_size: 2,
        drop_last: true,
        shuffle: true,
        seed: 9,
    };
    let source = ResidentSource::new(split, batching, AugmentSpec::NONE, Normalization::CIFAR10);
    let mut val = Loader::new(source, 0);
    let labels = |b: Batch| Vec::<i64>::try_from(b.labels).unwrap();
    // a search epoch starting at global step 40 with seed 2: set_epoch(42), a fresh iterator
    restart_val(&mut val, 40, 2);
    let epoch: Vec<i64> = (0..3)
        .flat_map(|_| labels(next_val(&mut val, 40, 2).unwrap()))
        .collect();
    assert_eq!(epoch, epoch_order(&batching, 42, 6));
    // exhausted at global step 45: set_epoch(47), restarted
    let b = next_val(&mut val, 45, 2).unwrap();
    assert_eq!(labels(b), epoch_order(&batching, 47, 6)[..2]);
    assert_eq!(
        val.state(),
        LoaderState {
            epoch: 47,
            position: 1
        }
    );
}

/// A space that counts its forward passes.
struct Counting<'a> {
    inner: &'a DartsSearch,
    forwards: std::cell::Cell<usize>,
}

impl SearchSpace for Counting<'_> {
    type Sample = <DartsSearch as SearchSpace>::Sample;
    fn distribution(&self) -> &crate::nas::distribution::Categoricals {
        self.inner.distribution()
    }
    fn sample(&self, xs: &[Tensor]) -> Self::Sample {
        self.inner.sample(xs)
    }
    fn forward(&self, x: &Tensor, s: &Self::Sample, kind: SampleKind, train: bool) -> Tensor {
        self.forwards.set(self.forwards.get() + 1);
        self.inner.forward(x, s, kind, train)
    }
    fn penalty(&self, s: &Self::Sample, weight: f64) -> Option<Tensor> {
        self.inner.penalty(s, weight)
    }
    fn genotype_json(&self, pretty: bool) -> anyhow::Result<String> {
        self.inner.genotype_json(pretty)
    }
    fn genotype_of(&self, onehot: &[Tensor], pretty: bool) -> anyhow::Result<String> {
        self.inner.genotype_of(onehot, pretty)
    }
    fn choice_label(&self, g: &str, selector: usize, c: usize) -> crate::nas::space::ChoiceLabel {
        self.inner.choice_label(g, selector, c)
    }
}

#[test]
fn the_val_objective_makes_no_training_forward_and_gengap_makes_both() {
    let (_vs, inner) = tiny_space();
    let space = Counting {
        inner: &inner,
        forwards: std::cell::Cell::new(0),
    };
    let (b, v) = (batch(1), batch(2));
    let draw = space.distribution().sample(B, 0.4, Sampler::Original);
    for (kind, forwards) in [("train", 1), ("val", 1), ("gengap", 2)] {
        let s: config::Search = serde_saphyr::from_str(&format!(
            "{{estimator: gsm, objective: {{kind: {kind}}}, epochs: {{warmup: 1, search: 1}}, batch: 16}}"
        ))
        .unwrap();
        space.forwards.set(0);
        let arch = ArchPer::Example(1);
        let val = (kind != "train").then_some(&v);
        let _ = tch::no_grad(|| {
            per_sub_batch(
                &space,
                &draw.relaxed,
                SampleKind::Relaxed,
                arch,
                &b,
                val,
                &s,
            )
        });
        assert_eq!(space.forwards.get(), forwards, "{kind}");
    }
}
