use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::*;
use crate::nas::space::op_skip_check::{
    assert_input_ignored_only_when_all_skipped, assert_trains_at, LARGEST_THRESHOLD,
};
use crate::nas::space::proxyless::eval_net::skeleton;

fn tiny(threshold: f64) -> (VarStore, ProxylessSearchNet) {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let cfg = ProxylessSearchConfig {
        width_multiplier: 0.25,
        resolution: 32,
        classes: 5,
        op_skip_threshold: threshold,
        zero_dropout: 0.1,
    };
    let net = ProxylessSearchNet::new(&vs.root(), &cfg).unwrap();
    (vs, net)
}

/// One architecture: op `k` in every normal block, op `k mod 6` in every reduce block, one-hot.
fn onehot(k: i64) -> ProxylessSample {
    let rows = |s: i64, kk: i64, idx: i64| {
        Tensor::full([s, 1], idx, (Kind::Int64, Device::Cpu))
            .one_hot(kk)
            .to_kind(Kind::Float)
    };
    ProxylessSample {
        normal: rows(15, 7, k),
        reduce: rows(6, 6, k % 6),
    }
}

#[test]
fn the_skeleton_at_width_one_is_the_evaluation_networks() {
    let ((stem, first, head), blocks) = skeleton_at(1.0);
    assert_eq!((stem, first, head), (40, 24, 1728));
    assert_eq!(blocks, skeleton());
    // a small multiplier keeps every width a multiple of 8 and ≥ 8
    let (_, small) = skeleton_at(0.25);
    assert!(small
        .iter()
        .all(|(i, o, _)| i % 8 == 0 && o % 8 == 0 && *i >= 8));
    assert_eq!(make_divisible(0.35 * 56.0), 24); // 19.6 → 16 is < 0.9·19.6, so 24
}

#[test]
fn discrete_path_equals_relaxed_path_at_a_one_hot_sample_for_every_op() {
    let (_vs, net) = tiny(0.0); // threshold 0: the relaxed path runs every op with weight 0 or 1
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    for k in 0..7 {
        let s = onehot(k);
        let (d, r) = tch::no_grad(|| {
            (
                net.forward(&x, &s, SampleKind::OneHot, false),
                net.forward(&x, &s, SampleKind::Relaxed, false),
            )
        });
        let diff = (&d - &r).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "op {k}: discrete and relaxed differ by {diff}");
        let direct = net.forward_discrete(&x, &choices_of(&s), false);
        assert!((&d - direct).abs().max().double_value(&[]) < 1e-6);
    }
    // and the ops are different functions: op 0 (mic_zero) and op 6 (mic_7x7_e6) disagree (in training
    // mode: with the running statistics of a fresh network, BN is the identity and PyTorch's small
    // initial weights leave every block close to its shortcut)
    let a = tch::no_grad(|| net.forward(&x, &onehot(0), SampleKind::OneHot, true));
    let b = tch::no_grad(|| net.forward(&x, &onehot(6), SampleKind::OneHot, true));
    let scale = a.abs().max().double_value(&[]);
    assert!((a - b).abs().max().double_value(&[]) > 1e-3 * scale && scale > 0.0);
}

#[test]
fn zero_op_dropout_acts_in_training_only() {
    let (_vs, net) = tiny(0.05);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let s = onehot(0);
    tch::manual_seed(1);
    let t1 = net.forward_discrete(&x, &choices_of(&s), true);
    tch::manual_seed(2);
    let t2 = net.forward_discrete(&x, &choices_of(&s), true);
    assert!((&t1 - &t2).abs().max().double_value(&[]) > 0.0);
    let e1 = net.forward_discrete(&x, &choices_of(&s), false);
    let e2 = net.forward_discrete(&x, &choices_of(&s), false);
    assert_eq!((e1 - e2).abs().max().double_value(&[]), 0.0);
}

#[test]
fn a_resolution_the_strides_cannot_divide_is_refused() {
    let vs = VarStore::new(Device::Cpu);
    let cfg = ProxylessSearchConfig {
        width_multiplier: 0.25,
        resolution: 48,
        classes: 5,
        op_skip_threshold: 0.05,
        zero_dropout: 0.1,
    };
    let err = ProxylessSearchNet::new(&vs.root(), &cfg).unwrap_err();
    assert!(err.to_string().contains("total stride 32"), "{err}");
}

/// A relaxed sample of one architecture (N = 1): each block's weights a softmax, all below 1.
fn relaxed() -> ProxylessSample {
    tch::manual_seed(4);
    let rows = |s: i64, k: i64| {
        Tensor::randn([s, 1, k], (Kind::Float, Device::Cpu)).softmax(-1, Kind::Float)
    };
    ProxylessSample {
        normal: rows(15, 7),
        reduce: rows(6, 6),
    }
}

#[test]
fn every_threshold_validation_accepts_trains_and_an_all_skipped_block_outputs_zeros() {
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let s = relaxed();
    assert_trains_at(&[0.0, 1.0 / 7.0, 0.9, LARGEST_THRESHOLD], [2, 5], |thr| {
        let (vs, net) = tiny(thr);
        let out = net.forward(&x, &s, SampleKind::Relaxed, true);
        (vs, out)
    });
    // at the largest threshold every block of this sample is skipped (Σ over no ops = 0), so the
    // logits no longer depend on the images; at 0 they do. Training mode (batch statistics): with
    // PyTorch's initialisation and fresh running statistics (mean 0, var 1), an inference-mode forward
    // shrinks the activations block by block until the logits hardly move with the input at all.
    assert_input_ignored_only_when_all_skipped(&x, |thr, images| {
        let (_vs, net) = tiny(thr);
        net.forward(images, &s, SampleKind::Relaxed, true)
    });
    // a one-hot sample's chosen op (weight 1) passes every threshold: the discrete path's numbers
    let (_vs, net) = tiny(LARGEST_THRESHOLD);
    let hard = onehot(3);
    let diff = tch::no_grad(|| {
        let r = net.forward(&x, &hard, SampleKind::Relaxed, false);
        let d = net.forward_discrete(&x, &choices_of(&hard), false);
        (r - d).abs().max().double_value(&[])
    });
    assert!(diff < 1e-5, "{diff}");
}
