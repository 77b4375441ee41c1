//! What the search loop needs of a search space: a supernet that runs on an architecture sample
//! (relaxed, or one-hot through the discrete fast path), the factorised distribution whose logits the
//! architecture step trains, the space's own objective term, the derived genotype, and the labels of
//! its choices in the `arch` table; and, for a space with a latency term, the discrete network of a
//! sample to time and the features its surrogate reads. DARTS and ProxylessNAS implement it.

use anyhow::Result;
use tch::Tensor;

use crate::nas::arch::SampleKind;
use crate::nas::distribution::Categoricals;
use crate::results::rows::ChoiceKey;

/// How one choice of one selector group is labelled in the `arch` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceLabel {
    /// `normal` | `reduce` (DARTS) or `block` (ProxylessNAS).
    pub cell_type: String,
    /// Intermediate node (DARTS) or block index.
    pub node: i64,
    pub key: ChoiceKey,
    /// Op name or input label.
    pub name: String,
}

/// A genotype as JSON, pretty-printed (files) or on one line (table cells).
pub fn to_json<T: serde::Serialize>(g: &T, pretty: bool) -> Result<String> {
    Ok(if pretty {
        serde_json::to_string_pretty(g)?
    } else {
        serde_json::to_string(g)?
    })
}

/// The discrete network of one architecture: x [B, 3, H, W] → logits, eval mode, no gradient.
pub type DiscreteNetwork<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;

/// A search space as the search loop sees it.
pub trait SearchSpace {
    /// The supernet's view of one draw (shallow clones of its tensors: gradients flow through).
    type Sample;

    /// The architecture distribution; its logits are the architecture parameters.
    fn distribution(&self) -> &Categoricals;

    /// Per-group draw tensors ([S, N, K], in the distribution's group order) → the supernet's sample.
    fn sample(&self, xs: &[Tensor]) -> Self::Sample;

    /// x [B, 3, H, W] → logits [B, classes], with N = B architectures (one per example) or N = 1.
    fn forward(&self, x: &Tensor, sample: &Self::Sample, kind: SampleKind, train: bool) -> Tensor;

    /// The space's own per-example objective term [N] (DARTS: `weight`·pair penalty), if it has one.
    fn penalty(&self, sample: &Self::Sample, weight: f64) -> Option<Tensor>;

    /// The genotype of the distribution's mode as JSON, printed and loaded like the published ones.
    fn genotype_json(&self, pretty: bool) -> Result<String>;

    /// The genotype JSON of a one-hot sample of one architecture (per-group [S, 1, K]): what random
    /// search scores and returns.
    fn genotype_of(&self, onehot: &[Tensor], pretty: bool) -> Result<String>;

    /// The label of choice `choice` of selector `selector` (its row) of the group named `group`.
    fn choice_label(&self, group: &str, selector: usize, choice: usize) -> ChoiceLabel;

    /// The discrete network of a one-hot sample of one architecture (per-group [S, 1, K]): a function
    /// that runs it on `x` in eval mode without gradient, what a latency term times (spec §4; the
    /// architecture is read once, outside the timed passes). `None` where the space has no discrete
    /// network to time.
    fn discrete_network(&self, _onehot: &[Tensor]) -> Option<DiscreteNetwork<'_>> {
        None
    }

    /// The feature vector a latency surrogate reads of a sample, [N, D] (the official
    /// `get_arch_sample`); `None` where the space has no latency term.
    fn arch_features(&self, _xs: &[Tensor]) -> Option<Tensor> {
        None
    }
}
