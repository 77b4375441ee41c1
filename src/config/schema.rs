//! The serde schema of one experiment file. Every choice is an enum, every section rejects unknown keys,
//! and every default is the official UNAS value (`shared/design/unas-spec.md` §1.5, §6) so that an
//! experiment file only says what it changes.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::estimator::{Estimator, Selection};
use super::width::Width;

/// One experiment: what to search, how to train the result, with which seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Short identifier; names the run folders (`results/runs/<name>/...`).
    pub name: String,
    /// Rendered at the top of the experiment's report page, like a notebook's first cell.
    #[serde(default)]
    pub description: String,
    pub dataset: Dataset,
    pub space: Space,
    /// Absent for an experiment that only trains a named genotype.
    #[serde(default)]
    pub search: Option<Search>,
    /// Absent for a search-only experiment.
    #[serde(default)]
    pub train: Option<Train>,
    pub seeds: Seeds,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub device: DeviceChoice,
    /// cuDNN benchmark off and deterministic algorithms where libtorch has them.
    #[serde(default)]
    pub deterministic: bool,
    /// The forward passes' precision: `fp32` (the official code's, the default) or `bf16` autocast.
    /// Left out of the serialised config (and so of the run id) when fp32.
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// Deliberate differences from the official code or the paper; printed under every table.
    #[serde(default)]
    pub deviations: Vec<String>,
    /// A grid of variants, `field.path: [values]`: every combination of the listed values (the product
    /// over the keys) is one full experiment, named `<name>.<leaf>-<value>...` (`config::sweep`).
    /// A variant keeps the grid, so the report can put the whole sweep in one table and one plot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<std::collections::BTreeMap<String, Vec<serde_json::Value>>>,
    /// Written by the expansion of a `sweep` (never by a file): the experiment the variant comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_of: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum DatasetName {
    Cifar10,
    Cifar100,
    Imagenet,
    /// The embedded, generated CIFAR-shaped dataset (no files needed).
    Synthetic,
}

impl DatasetName {
    /// Number of classes of the dataset (the synthetic one says its own).
    pub fn classes(self, synthetic: &SyntheticSpec) -> u32 {
        match self {
            DatasetName::Cifar10 => 10,
            DatasetName::Cifar100 => 100,
            DatasetName::Imagenet => 1000,
            DatasetName::Synthetic => synthetic.classes,
        }
    }

    /// (train, test) image counts of the full dataset.
    pub fn sizes(self, synthetic: &SyntheticSpec) -> (u64, u64) {
        match self {
            DatasetName::Cifar10 | DatasetName::Cifar100 => (50_000, 10_000),
            DatasetName::Imagenet => (1_281_167, 50_000),
            DatasetName::Synthetic => (synthetic.train, synthetic.test),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: DatasetName,
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Search splits the training set: the first `train_portion` of a fixed permutation trains the
    /// weights, the rest is the validation split (0.9 → 45k/5k on CIFAR).
    #[serde(default = "default_train_portion")]
    pub train_portion: f64,
    #[serde(default)]
    pub synthetic: SyntheticSpec,
    /// Per-channel mean/std the images are normalised with; left out, the official choice
    /// ([`Dataset::statistics`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
}

/// The per-channel statistics of the normalisation `x ↦ (x/255 − mean)/std`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistics {
    /// The CIFAR-10 training set's (DARTS `_data_transforms_cifar10`). The official UNAS code
    /// normalises CIFAR-100 with these too (`util/datasets.py` calls `_data_transforms_cifar10` for
    /// both datasets).
    Cifar10,
    /// The CIFAR-100 training set's (not what the official code uses; for ablations).
    Cifar100,
    /// torchvision's ImageNet statistics.
    Imagenet,
    /// Measured on the resident training split (the synthetic dataset's default).
    Measured,
}

fn default_root() -> PathBuf {
    PathBuf::from("data")
}
fn default_train_portion() -> f64 {
    0.9
}

/// Shape of the embedded synthetic dataset (used only when `dataset.name: synthetic`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    #[serde(default = "default_syn_classes")]
    pub classes: u32,
    #[serde(default = "default_syn_train")]
    pub train: u64,
    #[serde(default = "default_syn_test")]
    pub test: u64,
    #[serde(default)]
    pub seed: u64,
    /// Which dataset the stand-in imitates: `cifar` (3×32×32, CIFAR-shaped networks and augmentation)
    /// or `imagenet` (3×224×224, the ImageNet stem, no search augmentation, the ImageNet recipes). An
    /// ImageNet experiment says `synthetic: {like: imagenet}` so that the smoke tier keeps its shape.
    #[serde(default, skip_serializing_if = "ImageShape::is_cifar")]
    pub like: ImageShape,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            classes: default_syn_classes(),
            train: default_syn_train(),
            test: default_syn_test(),
            seed: 0,
            like: ImageShape::Cifar,
        }
    }
}

/// The geometry a dataset's images have, which decides the network stem and the transforms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageShape {
    /// 3×32×32: CIFAR stem, RandomCrop(32, 4) + flip during search.
    #[default]
    Cifar,
    /// 3×224×224: ImageNet stem (three stride-2 convolutions), Resize 256 → CenterCrop 224 in search.
    Imagenet,
}

impl ImageShape {
    pub fn is_cifar(&self) -> bool {
        *self == ImageShape::Cifar
    }
    /// Side of the (square) network input in pixels.
    pub fn side(self) -> i64 {
        match self {
            ImageShape::Cifar => 32,
            ImageShape::Imagenet => 224,
        }
    }
}

impl Dataset {
    /// The statistics the images are normalised with: the file's, or the official choice (CIFAR-10's
    /// for CIFAR-10 *and* CIFAR-100, ImageNet's for ImageNet, measured for the synthetic dataset).
    pub fn statistics(&self) -> Statistics {
        self.statistics.unwrap_or(match self.name {
            DatasetName::Cifar10 | DatasetName::Cifar100 => Statistics::Cifar10,
            DatasetName::Imagenet => Statistics::Imagenet,
            DatasetName::Synthetic => Statistics::Measured,
        })
    }

    /// The geometry of this dataset's images (a synthetic stand-in has the one it imitates).
    pub fn shape(&self) -> ImageShape {
        match self.name {
            DatasetName::Cifar10 | DatasetName::Cifar100 => ImageShape::Cifar,
            DatasetName::Imagenet => ImageShape::Imagenet,
            DatasetName::Synthetic => self.synthetic.like,
        }
    }
}
fn default_syn_classes() -> u32 {
    10
}
fn default_syn_train() -> u64 {
    2_000
}
fn default_syn_test() -> u64 {
    500
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpaceName {
    /// The paired-input DARTS cell space (§5.1).
    Darts,
    /// The MBConv space of ProxylessNAS-GPU (§5.2).
    Proxyless,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Space {
    pub name: SpaceName,
    /// Cells of the search network (DARTS space: 8 on CIFAR, 14 on ImageNet).
    #[serde(default = "default_layers")]
    pub layers: u32,
    /// Initial channels C of the search network.
    #[serde(default = "default_channels")]
    pub channels: u32,
    /// Number of primitives kept, in the official order (7 on CIFAR, 5 on ImageNet).
    #[serde(default = "default_ops")]
    pub ops: u32,
    /// ProxylessNAS width multiplier of the search supernet (1.0 in the paper; widths are rounded to
    /// multiples of 8). The evaluation network is trained at 1.0 (spec §6.3).
    #[serde(default = "default_width")]
    pub width_multiplier: f64,
    /// ProxylessNAS: side of the search supernet's input; images of another side are resized to it.
    /// Must be a multiple of the skeleton's total stride, 32. Filled in from the dataset (224 on
    /// ImageNet) when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<u32>,
    /// ProxylessNAS: dropout after the search supernet's `mic_zero` (official 0.1, "following P-DARTS
    /// add noise to skip operation"; 0 turns it off). Filled in as 0.1 when left out
    /// (`config::supernet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_dropout: Option<f64>,
}

fn default_layers() -> u32 {
    8
}
fn default_channels() -> u32 {
    16
}
fn default_ops() -> u32 {
    7
}
fn default_width() -> f64 {
    1.0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// f = ℓ_train on the training batch.
    Train,
    /// f = ℓ_val on a held-out batch (DARTS-style).
    Val,
    /// f = ℓ_tr + λ·|ℓ_va − ℓ_tr| per example (§3).
    Gengap,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    pub kind: ObjectiveKind,
    /// λ of the generalisation gap term.
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// Weight of the pair penalty (both selectors of a node choose the same input and op); DARTS space.
    #[serde(default = "default_pair_penalty")]
    pub pair_penalty: f64,
    /// Latency hinge c_t·relu(lat − T) (ProxylessNAS space).
    #[serde(default)]
    pub latency: Option<Latency>,
}

fn default_lambda() -> f64 {
    0.5
}
fn default_pair_penalty() -> f64 {
    0.2
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Target T in ms for a `batch`-image forward pass on the search device.
    #[serde(default = "default_target_ms")]
    pub target_ms: f64,
    /// Final coefficient c of the hinge.
    #[serde(default = "default_lat_coeff")]
    pub coeff: f64,
    /// c_t = coeff · clip(step / ramp_steps, 0, 1).
    #[serde(default = "default_ramp")]
    pub ramp_steps: u64,
    #[serde(default = "default_lat_batch")]
    pub batch: u32,
    /// Latency = median of this many synchronised, timed forward passes.
    #[serde(default = "default_repeats")]
    pub repeats: u32,
    /// Architectures measured to fit the linear surrogate.
    #[serde(default = "default_surrogate_samples")]
    pub surrogate_samples: u32,
    /// Ridge regulariser of the surrogate fit.
    #[serde(default = "default_ridge")]
    pub ridge: f64,
    /// What L_d of the sampled architecture is: its timed latency (the paper), or the surrogate's
    /// prediction of it (no timing per step; reproducible).
    #[serde(default, skip_serializing_if = "LatencyMeasure::is_timed")]
    pub measure: LatencyMeasure,
}

/// Where the per-step latency of the sampled architecture comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyMeasure {
    /// Timed on the run's device at every architecture step (spec §4).
    #[default]
    Timed,
    /// The fitted surrogate's prediction for the discrete sample (timings only fit the surrogate).
    Surrogate,
}

impl LatencyMeasure {
    pub fn is_timed(&self) -> bool {
        *self == LatencyMeasure::Timed
    }
}

fn default_target_ms() -> f64 {
    10.0
}
fn default_lat_coeff() -> f64 {
    0.1
}
fn default_ramp() -> u64 {
    30_000
}
fn default_lat_batch() -> u32 {
    24
}
fn default_repeats() -> u32 {
    10
}
fn default_surrogate_samples() -> u32 {
    10_000
}
fn default_ridge() -> f64 {
    1.0
}

/// One architecture sample per example (CIFAR) or per mini-batch (ImageNet, `--same_alpha_minibatch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    #[default]
    PerExample,
    PerBatch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchEpochs {
    /// Weight-only epochs with the architecture frozen at the uniform distribution.
    pub warmup: u32,
    pub search: u32,
}

/// How learning rates scale with the global batch: `linear64` multiplies by batch/64 (the official
/// `--scale_lr`, B·world/64; the minima are not scaled, as in the official code).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScale {
    #[default]
    None,
    Linear64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchLr {
    /// Adam lr of the supernet weights, before scaling.
    #[serde(default = "default_lr_w")]
    pub weights: f64,
    /// Adam lr of the architecture logits, before scaling.
    #[serde(default = "default_lr_a")]
    pub arch: f64,
    #[serde(default = "default_lr_w_min")]
    pub weights_min: f64,
    #[serde(default = "default_lr_a_min")]
    pub arch_min: f64,
    #[serde(default)]
    pub scale: LrScale,
}

impl Default for SearchLr {
    fn default() -> Self {
        SearchLr {
            weights: default_lr_w(),
            arch: default_lr_a(),
            weights_min: default_lr_w_min(),
            arch_min: default_lr_a_min(),
            scale: LrScale::None,
        }
    }
}
fn default_lr_w() -> f64 {
    3e-4
}
fn default_lr_a() -> f64 {
    1e-3
}
fn default_lr_w_min() -> f64 {
    1e-4
}
fn default_lr_a_min() -> f64 {
    3e-4
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightDecay {
    #[serde(default = "default_wd_w")]
    pub weights: f64,
    #[serde(default = "default_wd_a")]
    pub arch: f64,
}

impl Default for WeightDecay {
    fn default() -> Self {
        WeightDecay {
            weights: default_wd_w(),
            arch: default_wd_a(),
        }
    }
}
fn default_wd_w() -> f64 {
    3e-4
}
fn default_wd_a() -> f64 {
    1e-6
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    pub estimator: Estimator,
    pub objective: Objective,
    /// Gumbel-softmax temperature τ, constant (no annealing).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Softening ε: logits become log(softmax(a) + ε) before sampling.
    #[serde(default)]
    pub soften_eps: f64,
    #[serde(default)]
    pub sampling: Sampling,
    pub epochs: SearchEpochs,
    /// Global batch (the official 4 GPUs × 32 = 128 on CIFAR).
    #[serde(default = "default_search_batch")]
    pub batch: u32,
    #[serde(default)]
    pub lr: SearchLr,
    #[serde(default)]
    pub weight_decay: WeightDecay,
    /// Gradient-norm clip of the weight step.
    #[serde(default = "default_grad_clip")]
    pub grad_clip: f64,
    /// An op whose largest weight in the batch is below this is skipped (official 0.05; 0 disables).
    #[serde(default = "default_op_skip")]
    pub op_skip_threshold: f64,
    /// The batch is cut into this many equal sub-batches, each its own forward pass with its own BN
    /// statistics and op-skip (one GPU of the official DDP run; the weight gradient is the mean of the
    /// sub-batch means). With `sampling: per_batch` each sub-batch has one architecture sample (the
    /// official `--same_alpha_minibatch` on 8 GPUs × 24 images is `batch: 192, sub_batches: 8`); with
    /// `per_example` every example keeps its own (the 4 GPUs × 32 CIFAR search: `batch: 128,
    /// sub_batches: 4`).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub sub_batches: u32,
    /// The gen-gap objective's training and validation passes (same weights, same architecture
    /// sample) run as one forward of both batches, each normalised with its own BatchNorm statistics
    /// (`nas::space::pass_norm`): the official numbers with half the kernel launches of those passes.
    /// Off by default (the official two forwards); no effect with the other objectives.
    #[serde(default, skip_serializing_if = "is_false")]
    pub batched_passes: bool,
    /// `estimator: random_ws`: how many architectures drawn uniformly are scored with the shared
    /// weights after the search (K; Li & Talwalkar's 1000 when left out). Filled in for random_ws and
    /// dropped for every other estimator by [`Search::resolved`], so a tier may set it for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<u32>,
}

impl Search {
    /// `candidates` filled in (random_ws) or dropped (the others, which never read it), so that the
    /// resolved config and its id are the same whether it was written, defaulted or set by a tier.
    pub fn resolved(&self) -> Search {
        let mut s = self.clone();
        s.candidates = match self.estimator.selection() {
            Selection::BestCandidate => self.candidates.or(Some(Estimator::RANDOM_WS_CANDIDATES)),
            Selection::Mode => None,
        };
        s
    }
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}

fn default_temperature() -> f64 {
    0.4
}
fn default_search_batch() -> u32 {
    128
}
fn default_grad_clip() -> f64 {
    5.0
}
fn default_op_skip() -> f64 {
    0.05
}

/// From-scratch training recipe (§6); it fills every `train` field the file leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipe {
    Cifar,
    ImagenetDarts,
    ImagenetProxyless,
}

/// The architecture to train: the one this experiment's search derives, one drawn uniformly from the
/// space (the random-sampling baseline), or a published genotype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GenotypeChoice {
    #[serde(rename = "search")]
    Search,
    /// Drawn uniformly from the experiment's space (`nas::space::uniform`) with `train.genotype_seed`,
    /// or with the training seed when that is left out (one architecture per training seed).
    #[serde(rename = "random")]
    Random,
    #[serde(rename = "UNAS_CIFAR10")]
    UnasCifar10,
    #[serde(rename = "UNAS_CIFAR100")]
    UnasCifar100,
    #[serde(rename = "UNAS_IMAGENET")]
    UnasImagenet,
    #[serde(rename = "DARTS_V2")]
    DartsV2,
    /// The UNAS network of the ProxylessNAS space.
    #[serde(rename = "UNAS_PROXYLESS")]
    UnasProxyless,
    #[serde(rename = "PROXYLESS_GPU")]
    ProxylessGpu,
}

impl GenotypeChoice {
    /// Whether the genotype is the one a search of this experiment derives (one training per search
    /// and training seed), rather than one known before any search (one per training seed: a
    /// published genotype, or a uniform draw from the training seed or `genotype_seed`).
    pub fn is_searched(self) -> bool {
        match self {
            GenotypeChoice::Search => true,
            GenotypeChoice::Random
            | GenotypeChoice::UnasCifar10
            | GenotypeChoice::UnasCifar100
            | GenotypeChoice::UnasImagenet
            | GenotypeChoice::DartsV2
            | GenotypeChoice::UnasProxyless
            | GenotypeChoice::ProxylessGpu => false,
        }
    }

    /// The space a published genotype belongs to; `None` for `search` and `random`, which fit any.
    pub fn space(self) -> Option<SpaceName> {
        match self {
            GenotypeChoice::Search | GenotypeChoice::Random => None,
            GenotypeChoice::UnasCifar10
            | GenotypeChoice::UnasCifar100
            | GenotypeChoice::UnasImagenet
            | GenotypeChoice::DartsV2 => Some(SpaceName::Darts),
            GenotypeChoice::UnasProxyless | GenotypeChoice::ProxylessGpu => {
                Some(SpaceName::Proxyless)
            }
        }
    }
}

/// From-scratch training. Fields left out take the recipe's value (the table and the overlay of
/// `config::recipe`, [`Train::resolved`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Train {
    pub recipe: Recipe,
    #[serde(default = "default_genotype")]
    pub genotype: GenotypeChoice,
    /// With `genotype: random`: the seed of the draw, so every training seed trains the same
    /// architecture; left out, each training seed draws its own. Absent from the serialised config
    /// when left out (earlier run ids stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genotype_seed: Option<u64>,
    pub epochs: Option<u32>,
    pub batch: Option<u32>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub weight_decay: Option<f64>,
    pub warmup_epochs: Option<u32>,
    /// Initial channels C: a number, or `auto` (also written `0`) for the recipe's own choice (on
    /// ImageNet-DARTS the largest even C under the MAC budget).
    pub channels: Option<Width>,
    pub layers: Option<u32>,
    pub drop_path: Option<f64>,
    pub auxiliary_weight: Option<f64>,
    /// Cutout side in pixels (0 = off).
    pub cutout: Option<u32>,
    pub label_smoothing: Option<f64>,
    pub grad_clip: Option<f64>,
    /// MAC budget in millions for the automatic ImageNet width.
    pub max_macs_m: Option<f64>,
    /// Each full-batch training step replays one CUDA graph captured per epoch
    /// (`train::graphed_step`): one launch instead of thousands. CUDA only (ignored with a warning on
    /// the CPU); not with `precision: bf16`. Off by default.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cuda_graphs: bool,
    /// G slices of every batch, each its own forward pass with its own BatchNorm statistics and
    /// drop-path draw, the gradient the mean of the slice means: G GPUs under DDP (the ImageNet
    /// recipes: 8). BN running statistics follow slice 0, as DDP broadcasts rank 0's buffers. Must
    /// divide `batch`; `unas run --ranks R` runs G/R slices per rank. Default 1 (resolved as absent,
    /// so run ids of one-slice trainings do not name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_batches: Option<u32>,
}

fn default_genotype() -> GenotypeChoice {
    GenotypeChoice::Search
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seeds {
    /// One independent search per seed.
    pub search: Vec<u64>,
    /// One from-scratch training per seed, for every searched (or named) genotype.
    pub train: Vec<u64>,
}

/// How independent searches become one reported number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Mean ± std of the test accuracy over every search's trained genotype.
    #[default]
    MeanOverSearches,
    /// The genotype of the search with the best final validation accuracy.
    BestOfSearchesByVal,
}

/// The precision of the forward passes (`train::autocast`). `bf16` runs them under libtorch's autocast
/// with bfloat16 (convolutions and matrix products in bf16, reductions and the loss in fp32; weights,
/// gradients and optimiser state stay fp32, so no loss scaling is needed). fp16 is not offered: it needs
/// a gradient scaler to keep small gradients from underflowing.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Where to run: the first GPU if there is one (`auto`), the CPU, or a given GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda(Option<usize>),
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(None) => f.write_str("cuda"),
            DeviceChoice::Cuda(Some(n)) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(None)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceChoice::Cuda(Some(n))),
                _ => Err(format!(
                    "unknown device `{other}`, expected one of `auto`, `cpu`, `cuda`, `cuda:N`"
                )),
            },
        }
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
