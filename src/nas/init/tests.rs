//! Every parameter of every network we build starts as PyTorch would start it (tensor by tensor), and a
//! fresh network's loss on 10 classes is near ln 10.

use std::collections::BTreeMap;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::bound;
use crate::nas::arch::{CellSample, DartsSample, SampleKind};
use crate::nas::relax_cv::RelaxControlVariate;
use crate::nas::space::darts::{
    DartsEvalNet, DartsSearchConfig, DartsSearchNet, EvalConfig, Genotype,
};
use crate::nas::space::proxyless::{
    ProxylessEvalNet, ProxylessGenotype, ProxylessSearchConfig, ProxylessSearchNet,
};

/// What PyTorch's `reset_parameters` gives a tensor.
#[derive(Debug)]
enum Expected {
    /// U(±1/√fan_in): Conv2d and Linear weights and biases.
    Uniform { fan_in: i64 },
    /// Every element this value: BatchNorm γ (1) and β (0), running mean (0) and variance (1).
    Const(f64),
}

/// The expectation for `name` in `vars`, from the layer type its shape and its siblings imply; None for
/// a tensor of no known layer type (a new layer that must be added here and to `nas/init.rs`).
fn expected(name: &str, vars: &BTreeMap<String, Tensor>) -> Option<Expected> {
    let (layer, leaf) = name.rsplit_once('.')?;
    let weight_dims = |n: &str| vars.get(&format!("{layer}.{n}")).map(|t| t.size());
    let fan_in = |d: &[i64]| d[1..].iter().product::<i64>(); // C_in/groups·k_h·k_w, or in_features
    match (leaf, weight_dims("weight")) {
        ("weight", Some(d)) if d.len() == 4 || d.len() == 2 => {
            Some(Expected::Uniform { fan_in: fan_in(&d) })
        }
        ("weight", Some(d)) if d.len() == 1 => Some(Expected::Const(1.0)),
        ("bias", Some(d)) if d.len() == 4 || d.len() == 2 => {
            Some(Expected::Uniform { fan_in: fan_in(&d) })
        }
        ("bias", Some(d)) if d.len() == 1 => Some(Expected::Const(0.0)),
        ("running_mean", _) => Some(Expected::Const(0.0)),
        ("running_var", _) => Some(Expected::Const(1.0)),
        _ => None,
    }
}

/// Checks one tensor against its expectation; the error says by how much it is off.
/// U(±b) has std b/√3 and E[w⁴] = b⁴/5, so the sample mean of w² has a relative standard error of
/// √(4/45)·3/√n = 0.894/√n and the sample std about half that; 6 of those plus float slack.
fn check(name: &str, t: &Tensor, e: &Expected) -> Result<(), String> {
    let t = t.to_kind(Kind::Double);
    let n = t.numel() as f64;
    match *e {
        Expected::Const(v) => {
            let off = (&t - v).abs().max().double_value(&[]);
            (off == 0.0)
                .then_some(())
                .ok_or(format!("{name}: expected all {v}, off by up to {off}"))
        }
        Expected::Uniform { fan_in } => {
            let b = bound(fan_in);
            let max = t.abs().max().double_value(&[]);
            let std = t.square().mean(Kind::Double).sqrt().double_value(&[]);
            let mean = t.mean(Kind::Double).double_value(&[]);
            let rel = std / (b / 3f64.sqrt()) - 1.0;
            let tol = 6.0 * 0.447 / n.sqrt() + 1e-6;
            let mean_tol = 6.0 * b / (3.0 * n).sqrt();
            if max > b * (1.0 + 1e-6) {
                Err(format!(
                    "{name}: |w| reaches {max:.4}, above 1/√{fan_in} = {b:.4}"
                ))
            } else if rel.abs() > tol {
                Err(format!(
                    "{name}: std {std:.5} is {:+.1}% off b/√3 = {:.5} (tolerance {:.1}%)",
                    100.0 * rel,
                    b / 3f64.sqrt(),
                    100.0 * tol
                ))
            } else if mean.abs() > mean_tol {
                Err(format!("{name}: mean {mean:.5} beyond ±{mean_tol:.5}"))
            } else {
                Ok(())
            }
        }
    }
}

/// Checks every variable of `vs` (parameters and BatchNorm buffers); returns how many were checked.
fn check_store(what: &str, vs: &VarStore) -> usize {
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut errors = Vec::new();
    for (name, t) in &vars {
        match expected(name, &vars) {
            Some(e) => {
                if let Err(msg) = check(name, t, &e) {
                    errors.push(msg);
                }
            }
            None => errors.push(format!(
                "{name} {:?}: no known layer type; give it PyTorch's default in nas/init.rs and here",
                t.size()
            )),
        }
    }
    assert!(errors.is_empty(), "{what}:\n{}", errors.join("\n"));
    vars.len()
}

#[test]
fn every_parameter_of_every_network_starts_at_pytorchs_default() {
    tch::manual_seed(0);
    let mut checked = 0;
    let store = |build: &dyn Fn(&VarStore)| {
        let vs = VarStore::new(Device::Cpu);
        build(&vs);
        vs
    };
    // DARTS supernets, CIFAR and ImageNet stems
    for cfg in [
        DartsSearchConfig {
            layers: 5,
            channels: 8,
            ..DartsSearchConfig::cifar(10)
        },
        DartsSearchConfig {
            layers: 3,
            channels: 8,
            ..DartsSearchConfig::imagenet(10)
        },
    ] {
        let vs = store(&|vs| {
            DartsSearchNet::new(&vs.root(), &cfg).unwrap();
        });
        checked += check_store(&format!("DARTS supernet {:?}", cfg.stem), &vs);
    }
    // DARTS evaluation networks with their auxiliary heads
    for (g, cfg) in [
        (
            Genotype::unas_cifar10(),
            EvalConfig {
                channels: 8,
                layers: 5,
                ..EvalConfig::cifar(10)
            },
        ),
        (
            Genotype::darts_v2(),
            EvalConfig {
                layers: 3,
                ..EvalConfig::imagenet(10, 8)
            },
        ),
    ] {
        assert!(cfg.auxiliary, "the auxiliary head must be checked too");
        let vs = store(&|vs| {
            DartsEvalNet::new(&vs.root(), &g, &cfg).unwrap();
        });
        let n = check_store("DARTS evaluation network", &vs);
        assert!(vs
            .variables()
            .keys()
            .any(|k| k.starts_with("auxiliary_head.classifier")));
        checked += n;
    }
    // ProxylessNAS supernet and evaluation network
    let vs = store(&|vs| {
        let cfg = ProxylessSearchConfig {
            width_multiplier: 0.25,
            resolution: 32,
            classes: 10,
            op_skip_threshold: 0.05,
            zero_dropout: 0.1,
        };
        ProxylessSearchNet::new(&vs.root(), &cfg).unwrap();
    });
    checked += check_store("ProxylessNAS supernet", &vs);
    let vs = store(&|vs| {
        ProxylessEvalNet::new(&vs.root(), &ProxylessGenotype::unas(), 10).unwrap();
    });
    checked += check_store("ProxylessNAS evaluation network", &vs);
    assert!(checked > 500, "only {checked} tensors checked");
}

#[test]
fn the_relax_control_variate_starts_as_two_pytorch_linear_layers() {
    tch::manual_seed(0);
    let (d, h) = (60, 32);
    let cv = RelaxControlVariate::new(d, h, 1e-2, Kind::Float, Device::Cpu);
    let [w1, b1, w2, b2] = [0, 1, 2, 3].map(|i| &cv.parameters()[i]);
    // nn.Linear(D, H) then nn.Linear(H, 1): both of each layer's tensors U(±1/√fan_in)
    for (name, t, fan_in) in [("w1", w1, d), ("b1", b1, d), ("w2", w2, h), ("b2", b2, h)] {
        check(name, t, &Expected::Uniform { fan_in }).unwrap();
    }
}

#[test]
fn a_forgotten_initialisation_is_caught() {
    // tch's default conv weight is U(±√6/√fan_in): the check must refuse it
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let _ = tch::nn::conv2d(&(vs.root() / "c"), 8, 8, 3, Default::default());
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let e = expected("c.weight", &vars).unwrap();
    let err = check("c.weight", &vars["c.weight"], &e).unwrap_err();
    assert!(err.contains("above 1/√72"), "{err}");
    // and a tensor of no known layer type is refused by name
    let _ = vs.root().var("alpha", &[3], tch::nn::Init::Const(0.0));
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    assert!(expected("alpha", &vars).is_none());
}

/// Mean cross-entropy of `logits` [B, 10] against random labels.
fn loss_on_random_labels(logits: &Tensor) -> f64 {
    let y = Tensor::randint(10, [logits.size()[0]], (Kind::Int64, Device::Cpu));
    logits.cross_entropy_for_logits(&y).double_value(&[])
}

#[test]
fn a_fresh_network_starts_near_ln_10_on_ten_classes() {
    // Logits z with a spread σ² over the classes give E[CE] ≈ ln K + (1 − 1/K)·σ²/2 on labels
    // independent of z. PyTorch's default (classifier weights of variance 1/(3·fan_in)) gives σ² ≈ 0.3
    // here, ≈ 0.13 nats above ln 10, and 64 random labels add a standard error of ≈ σ/8 ≈ 0.07: within
    // 0.35 of ln 10. tch's default init (weights 6× the variance) started this supernet at 2.98.
    tch::manual_seed(0);
    let ln10 = 10f64.ln();
    let x = Tensor::randn([64, 3, 16, 16], (Kind::Float, Device::Cpu)); // the supernet's, small
    let vs = VarStore::new(Device::Cpu);
    let cfg = DartsSearchConfig {
        layers: 5,
        channels: 8,
        ..DartsSearchConfig::cifar(10)
    };
    let net = DartsSearchNet::new(&vs.root(), &cfg).unwrap();
    let sample = DartsSample {
        normal: CellSample::random(64, 7, SampleKind::Relaxed, Device::Cpu),
        reduce: CellSample::random(64, 7, SampleKind::Relaxed, Device::Cpu),
    };
    let logits = tch::no_grad(|| net.forward(&x, &sample, SampleKind::Relaxed, true));
    let search = loss_on_random_labels(&logits);
    let vs = VarStore::new(Device::Cpu);
    let eval_cfg = EvalConfig {
        channels: 8,
        layers: 5,
        ..EvalConfig::cifar(10)
    };
    let net = DartsEvalNet::new(&vs.root(), &Genotype::unas_cifar10(), &eval_cfg).unwrap();
    let x = Tensor::randn([64, 3, 32, 32], (Kind::Float, Device::Cpu)); // the auxiliary head's 8×8
    let (logits, _) = tch::no_grad(|| net.forward_t(&x, true));
    let eval = loss_on_random_labels(&logits);
    for (what, loss) in [("supernet", search), ("evaluation network", eval)] {
        eprintln!("{what}: initial loss {loss:.4} (ln 10 = {ln10:.4})");
        assert!(
            (loss - ln10).abs() < 0.35,
            "{what}: initial loss {loss:.4}, ln 10 = {ln10:.4}"
        );
    }
}
