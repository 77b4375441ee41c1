//! Model size of an evaluation network: parameters (from a CPU-built VarStore, auxiliary head left out
//! as `count_parameters_in_M` does) and MACs by the ptflops-0.4 rules (spec §6.2), counted by an
//! analytic walk over the same structure `DartsEvalNet` builds: eval mode, batch 1, no auxiliary head,
//! 32×32 (CIFAR) or 224×224 (ImageNet) input.
//!
//! ptflops 0.4: conv = k²·C_in·C_out/g·H_o·W_o, Linear = in·out, ReLU = output numel, pooling = input
//! numel, BN = input numel ×2 (affine), identity / add / concat = 0.

use anyhow::{bail, Result};
use tch::nn::VarStore;
use tch::Device;

use super::eval_net::{DartsEvalNet, EvalConfig};
use super::genotype::{Genotype, NodeGene};
use super::ops::Primitive;
use super::stem::StemKind;

/// Trainable parameters of the evaluation network, auxiliary head excluded.
pub fn params(genotype: &Genotype, cfg: &EvalConfig) -> Result<i64> {
    let vs = VarStore::new(Device::Cpu);
    DartsEvalNet::new(&vs.root(), genotype, cfg)?;
    Ok(vs
        .variables()
        .iter()
        .filter(|(name, t)| t.requires_grad() && !name.contains("auxiliary"))
        .map(|(_, t)| t.numel() as i64)
        .sum())
}

/// Parameters in millions (the paper's unit).
pub fn params_m(genotype: &Genotype, cfg: &EvalConfig) -> Result<f64> {
    Ok(params(genotype, cfg)? as f64 / 1e6)
}

/// Side of a map after a "same"-padded op of stride s: ⌊(h−1)/s⌋ + 1.
fn out_side(h: i64, stride: i64) -> i64 {
    (h - 1) / stride + 1
}

/// Running MAC total under the ptflops-0.4 rules; maps are square (side h).
#[derive(Default)]
struct Macs(i64);

impl Macs {
    /// k²·C_in·C_out/g·H_o·W_o
    fn conv(&mut self, k: i64, c_in: i64, c_out: i64, groups: i64, h_out: i64) {
        self.0 += k * k * c_in * (c_out / groups) * h_out * h_out;
    }
    /// output numel (= input numel)
    fn relu(&mut self, c: i64, h: i64) {
        self.0 += c * h * h;
    }
    /// input numel × 2 (affine)
    fn bn(&mut self, c: i64, h: i64) {
        self.0 += 2 * c * h * h;
    }
    /// input numel
    fn pool(&mut self, c: i64, h: i64) {
        self.0 += c * h * h;
    }
    /// in · out
    fn linear(&mut self, c_in: i64, c_out: i64) {
        self.0 += c_in * c_out;
    }

    /// ReLU, two 1×1 stride-2 convs to C_out/2 each, BN.
    fn factorized_reduce(&mut self, c_in: i64, c_out: i64, h: i64) {
        let ho = out_side(h, 2);
        self.relu(c_in, h);
        self.conv(1, c_in, c_out / 2, 1, ho);
        self.conv(1, c_in, c_out / 2, 1, ho);
        self.bn(c_out, ho);
    }

    fn relu_conv_bn(&mut self, c_in: i64, c_out: i64, h: i64) {
        self.relu(c_in, h);
        self.conv(1, c_in, c_out, 1, h);
        self.bn(c_out, h);
    }

    /// One candidate op on C channels, input side h.
    fn op(&mut self, prim: Primitive, c: i64, stride: i64, h: i64) {
        let ho = out_side(h, stride);
        match prim {
            Primitive::SkipConnect if stride == 1 => {}
            Primitive::SkipConnect => self.factorized_reduce(c, c, h),
            Primitive::SepConv3x3 | Primitive::SepConv5x5 | Primitive::SepConv7x7 => {
                let k = match prim {
                    Primitive::SepConv3x3 => 3,
                    Primitive::SepConv5x5 => 5,
                    _ => 7,
                };
                self.relu(c, h);
                self.conv(k, c, c, c, ho);
                self.conv(1, c, c, 1, ho);
                self.bn(c, ho);
                self.relu(c, ho);
                self.conv(k, c, c, c, ho);
                self.conv(1, c, c, 1, ho);
                self.bn(c, ho);
            }
            Primitive::DilConv3x3 | Primitive::DilConv5x5 => {
                let k = if prim == Primitive::DilConv3x3 { 3 } else { 5 };
                self.relu(c, h);
                self.conv(k, c, c, c, ho);
                self.conv(1, c, c, 1, ho);
                self.bn(c, ho);
            }
            Primitive::MaxPool3x3 | Primitive::AvgPool3x3 => self.pool(c, h),
        }
    }

    /// One evaluation cell; inputs (C_pp, h_pp), (C_p, h_p); returns the output side.
    fn cell(
        &mut self,
        genes: &[NodeGene],
        (c_pp, h_pp): (i64, i64),
        (c_p, h_p): (i64, i64),
        c: i64,
        reduction: bool,
        reduction_prev: bool,
    ) -> i64 {
        if reduction_prev {
            self.factorized_reduce(c_pp, c, h_pp);
        } else {
            self.relu_conv_bn(c_pp, c, h_pp);
        }
        self.relu_conv_bn(c_p, c, h_p);
        let h_out = if reduction { out_side(h_p, 2) } else { h_p };
        for gene in genes {
            for s in 0..2 {
                if gene.inputs[s] < 2 {
                    let stride = if reduction { 2 } else { 1 };
                    self.op(gene.ops[s], c, stride, h_p);
                } else {
                    self.op(gene.ops[s], c, 1, h_out);
                }
            }
        }
        h_out
    }
}

/// ptflops-0.4 MACs of the evaluation network (eval mode, batch 1, no auxiliary head).
pub fn macs(genotype: &Genotype, cfg: &EvalConfig) -> i64 {
    let mut m = Macs::default();
    let c0 = cfg.channels;
    let (mut pp, mut p) = match cfg.dataset {
        StemKind::Cifar => {
            m.conv(3, 3, 3 * c0, 1, 32);
            m.bn(3 * c0, 32);
            ((3 * c0, 32), (3 * c0, 32))
        }
        StemKind::Imagenet => {
            m.conv(3, 3, c0 / 2, 1, 112);
            m.bn(c0 / 2, 112);
            m.relu(c0 / 2, 112);
            m.conv(3, c0 / 2, c0, 1, 56);
            m.bn(c0, 56);
            m.relu(c0, 56);
            m.conv(3, c0, c0, 1, 28);
            m.bn(c0, 28);
            ((c0, 56), (c0, 28))
        }
    };
    let mut c = c0;
    let mut reduction_prev = cfg.dataset == StemKind::Imagenet;
    for i in 0..cfg.layers {
        let reduction = cfg.is_reduction(i);
        if reduction {
            c *= 2;
        }
        let (genes, concat) = if reduction {
            (&genotype.reduce, &genotype.reduce_concat)
        } else {
            (&genotype.normal, &genotype.normal_concat)
        };
        let h = m.cell(genes, pp, p, c, reduction, reduction_prev);
        reduction_prev = reduction;
        (pp, p) = (p, (concat.len() as i64 * c, h));
    }
    m.pool(p.0, p.1);
    m.linear(p.0, cfg.classes);
    m.0
}

/// The automatic ImageNet width (`darts/compute_flops.py:find_max_channels`): C = 30, 32, …, 68 in
/// turn, keeping the last whose MACs (1000 classes, L = `layers`) stay under `max_macs_m` million.
pub fn auto_width(genotype: &Genotype, layers: i64, max_macs_m: f64) -> Result<i64> {
    let mut best = None;
    for c in (30..70).step_by(2) {
        let cfg = EvalConfig {
            layers,
            ..EvalConfig::imagenet(1000, c)
        };
        if (macs(genotype, &cfg) as f64) < max_macs_m * 1e6 {
            best = Some(c);
        } else {
            break;
        }
    }
    match best {
        Some(c) => Ok(c),
        None => bail!(
            "no even width C in [30, 70) keeps this genotype under {max_macs_m}M MACs at L = {layers}; \
             raise train.max_macs_m or set train.channels"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cifar(classes: i64) -> EvalConfig {
        EvalConfig::cifar(classes)
    }

    fn assert_params_m(g: &Genotype, cfg: &EvalConfig, want: f64) {
        let got = params_m(g, cfg).unwrap();
        assert!((got - want).abs() <= 5e-4, "params {got:.4}M, want {want}M");
    }

    #[test]
    fn cifar_parameter_counts_match_the_published_sizes() {
        assert_params_m(&Genotype::unas_cifar10(), &cifar(10), 3.3308);
        assert_params_m(&Genotype::unas_cifar10(), &cifar(100), 3.3827);
        assert_params_m(&Genotype::unas_cifar100(), &cifar(100), 4.0672);
        assert_params_m(&Genotype::darts_v2(), &cifar(10), 3.3493);
    }

    #[test]
    fn unas_imagenet_auto_width_is_46_under_600m_macs() {
        let g = Genotype::unas_imagenet();
        assert_eq!(auto_width(&g, 14, 600.0).unwrap(), 46);
        let macs_m = |c| macs(&g, &EvalConfig::imagenet(1000, c)) as f64 / 1e6;
        assert!(
            (macs_m(46) - 563.83).abs() < 0.005,
            "C=46: {}M MACs",
            macs_m(46)
        );
        assert!(
            (macs_m(48) - 611.07).abs() < 0.005,
            "C=48: {}M MACs",
            macs_m(48)
        );
        assert_params_m(&g, &EvalConfig::imagenet(1000, 46), 5.074);
    }

    #[test]
    fn unas_cifar10_transferred_to_imagenet_gets_width_50() {
        let g = Genotype::unas_cifar10();
        assert_eq!(auto_width(&g, 14, 600.0).unwrap(), 50);
        assert_params_m(&g, &EvalConfig::imagenet(1000, 50), 5.220);
    }

    #[test]
    fn auxiliary_head_is_left_out_of_the_parameter_count() {
        let g = Genotype::unas_cifar10();
        let no_aux = EvalConfig {
            auxiliary: false,
            ..cifar(10)
        };
        assert_eq!(
            params(&g, &cifar(10)).unwrap(),
            params(&g, &no_aux).unwrap()
        );
    }
}
