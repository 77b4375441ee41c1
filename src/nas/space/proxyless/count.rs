//! Model size of a ProxylessNAS-space evaluation network: parameters (from a CPU-built VarStore) and
//! MACs by the ptflops-0.4 rules (spec §6.2), walked analytically over the same skeleton the network
//! builds: eval mode, batch 1, 224×224 input.

use anyhow::Result;
use tch::nn::VarStore;
use tch::Device;

use super::eval_net::{skeleton, ProxylessEvalNet, FIRST, HEAD, STAGES, STEM};
use super::genotype::{BlockOp, ProxylessGenotype};

/// Trainable parameters.
pub fn params(genotype: &ProxylessGenotype, classes: i64) -> Result<i64> {
    let vs = VarStore::new(Device::Cpu);
    ProxylessEvalNet::new(&vs.root(), genotype, classes)?;
    Ok(vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum())
}

/// ⌊(h − 1)/s⌋ + 1: the side after a "same"-padded op of stride s.
fn out_side(h: i64, s: i64) -> i64 {
    (h - 1) / s + 1
}

/// MACs split as ptflops counts them: convolutions and linear layers, and the rest (BN, ReLU6, pool).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macs {
    pub conv_linear: i64,
    pub other: i64,
}

impl Macs {
    pub fn total(&self) -> i64 {
        self.conv_linear + self.other
    }
    /// k²·C_in·C_out/g·H_o²
    fn conv(&mut self, k: i64, c_in: i64, c_out: i64, groups: i64, h_out: i64) {
        self.conv_linear += k * k * c_in * (c_out / groups) * h_out * h_out;
    }
    /// BN (2·numel) then ReLU6 (numel)
    fn bn_relu6(&mut self, c: i64, h: i64) {
        self.other += 3 * c * h * h;
    }
    fn bn(&mut self, c: i64, h: i64) {
        self.other += 2 * c * h * h;
    }
    /// Returns the output side.
    fn mbconv(&mut self, c_in: i64, c_out: i64, k: i64, e: i64, stride: i64, h: i64) -> i64 {
        let mid = c_in * e;
        if e > 1 {
            self.conv(1, c_in, mid, 1, h);
            self.bn_relu6(mid, h);
        }
        let ho = out_side(h, stride);
        self.conv(k, mid, mid, mid, ho);
        self.bn_relu6(mid, ho);
        self.conv(1, mid, c_out, 1, ho);
        self.bn(c_out, ho);
        ho
    }
}

/// ptflops-0.4 MACs at 224×224, batch 1.
pub fn macs(genotype: &ProxylessGenotype, classes: i64) -> Macs {
    let mut m = Macs::default();
    let h = out_side(224, 2);
    m.conv(3, 3, STEM, 1, h);
    m.bn_relu6(STEM, h);
    let mut h = m.mbconv(STEM, FIRST, 3, 1, 1, h);
    for (op, (c_in, c_out, stride)) in genotype.blocks().into_iter().zip(skeleton()) {
        if let BlockOp::MbConv { kernel, expand } = op {
            h = m.mbconv(c_in, c_out, kernel, expand, stride, h);
        }
    }
    let last = STAGES[STAGES.len() - 1].0;
    m.conv(1, last, HEAD, 1, h);
    m.bn_relu6(HEAD, h);
    m.other += HEAD * h * h; // global average pool: input numel
    m.conv_linear += HEAD * classes; // Linear: in·out
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §7.4: UNAS 5.966M parameters, 444.42M ptflops MACs (428.02M conv + linear);
    /// PROXYLESS_GPU 7.120M, 480.72M (465.26M).
    #[test]
    fn published_networks_have_the_exact_size_of_the_spec() {
        for (g, p, total, conv) in [
            (ProxylessGenotype::unas(), 5.966, 444.42, 428.02),
            (ProxylessGenotype::proxyless_gpu(), 7.120, 480.72, 465.26),
        ] {
            let params = params(&g, 1000).unwrap() as f64 / 1e6;
            let m = macs(&g, 1000);
            assert!((params - p).abs() < 5e-4, "{params} vs {p}");
            assert!(
                (m.total() as f64 / 1e6 - total).abs() < 5e-3,
                "{m:?} vs {total}"
            );
            assert!(
                (m.conv_linear as f64 / 1e6 - conv).abs() < 5e-3,
                "{m:?} vs {conv}"
            );
        }
    }
}
