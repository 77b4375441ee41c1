//! Determinism for resume. Instead of saving generator states, every step reseeds libtorch's global
//! generator (CPU and, through `torch::manual_seed`, every CUDA device) with a seed hashed from
//! (run seed, stream, phase, epoch, step): a run resumed at step s draws exactly the numbers the
//! uninterrupted run drew at step s. Data order uses its own stream per epoch.
//!
//! The [`Determinism`] switch turns off cuDNN autotuning (the official code sets
//! `cudnn.benchmark = True`, spec §8.1 item 7) and asks libtorch for deterministic algorithms. tch
//! 0.24 / torch-sys 0.24 bind only the benchmark flag (`atc_set_benchmark_cudnn`); the
//! deterministic-algorithm switches of `at::Context` have no binding, so they are called through
//! their C++ symbols in libtorch_cpu, looked up at run time with `dlsym` (a libtorch without them
//! leaves the fields `None`, and the run says so).

use std::ffi::{c_void, CStr};

use serde::{Deserialize, Serialize};

use crate::results::Phase;

/// Independent random streams of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// The global generator at the start of a step: architecture samples, drop-path, dropout,
    /// augmentation drawn with torch ops.
    Step,
    /// The order of the training examples in an epoch (step ignored).
    Shuffle,
    /// The order of the held-out examples when the search reshuffles its validation iterator.
    Validation,
    /// Evaluation passes (search-time `infer` samples architectures).
    Eval,
    /// The global generator at the start of slice g > 0 of a training step with `train.sub_batches`
    /// (its drop-path draw), step index step·G + g: each slice draws as its own GPU would, whichever
    /// rank runs it (slice 0 keeps the step's own stream).
    SubBatch,
    /// The global generator at the start of slice g of one forward pass of a search step (or of a
    /// search-time validation batch), and before the latency term's second sample ([`StepStreams`]):
    /// the ProxylessNAS zero op's dropout of a slice draws the same numbers whichever rank runs it,
    /// and what a step draws after its slices does not depend on which of them this rank ran.
    Slice,
}

impl Stream {
    fn tag(self) -> u8 {
        match self {
            Stream::Step => 1,
            Stream::Shuffle => 2,
            Stream::Validation => 3,
            Stream::Eval => 4,
            Stream::SubBatch => 5,
            Stream::Slice => 6,
        }
    }
}

fn phase_tag(p: Phase) -> u8 {
    match p {
        Phase::Warmup => 1,
        Phase::Search => 2,
        Phase::Train => 3,
    }
}

/// The seed of (run seed, stream, phase, epoch, step): the first 8 bytes of
/// blake3("unas-seed-v1" ‖ run seed ‖ stream ‖ phase ‖ epoch ‖ step), little-endian, top bit cleared
/// (libtorch takes an `i64`). Stable across platforms and versions of this crate.
pub fn derive_seed(run_seed: u64, stream: Stream, phase: Phase, epoch: u32, step: u64) -> i64 {
    hashed_seed(run_seed, stream, phase, epoch, &[step])
}

/// blake3("unas-seed-v1" ‖ run seed ‖ stream ‖ phase ‖ epoch ‖ words…), as [`derive_seed`].
fn hashed_seed(run_seed: u64, stream: Stream, phase: Phase, epoch: u32, words: &[u64]) -> i64 {
    let mut h = blake3::Hasher::new();
    h.update(b"unas-seed-v1");
    h.update(&run_seed.to_le_bytes());
    h.update(&[stream.tag(), phase_tag(phase)]);
    h.update(&epoch.to_le_bytes());
    for w in words {
        h.update(&w.to_le_bytes());
    }
    let bytes: [u8; 8] = h.finalize().as_bytes()[..8].try_into().expect("8 bytes");
    (u64::from_le_bytes(bytes) >> 1) as i64
}

/// The step index whose seed initialises a run's weights: one no real step reaches.
pub const INIT_STEP: u64 = u64::MAX;

/// Seeds libtorch's global generators (CPU and all CUDA devices) for step `step` of `epoch` in
/// `phase`. Call it at the start of every step, before anything random is drawn.
pub fn seed_step(run_seed: u64, phase: Phase, epoch: u32, step: u64) {
    tch::manual_seed(derive_seed(run_seed, Stream::Step, phase, epoch, step));
}

/// A forward pass of a search step whose slices may draw random numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The k-th evaluation of the search objective f in the architecture step (k from 0).
    Objective(u32),
    /// The weight step's forward.
    Weights,
    /// The latency term's second sample (one draw of the whole step, "slice" 0).
    LatencySample,
    /// A search-time validation batch (the step is the batch's index).
    Validation,
}

impl Pass {
    fn word(self) -> u64 {
        match self {
            Pass::Objective(k) => u64::from(k),
            Pass::Weights => u64::MAX,
            Pass::LatencySample => u64::MAX - 1,
            Pass::Validation => u64::MAX - 2,
        }
    }
}

/// The random streams of one step's slices: slice g of pass p reseeds the global generator from
/// (run seed, [`Stream::Slice`], phase, epoch, step, p, g) before it runs. A slice then draws the
/// same numbers (dropout) in one process as on whichever rank runs it, and a draw after the slices
/// (the latency term's second sample) is the same on every rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepStreams {
    pub run_seed: u64,
    pub phase: Phase,
    pub epoch: u32,
    pub step: u64,
}

impl StepStreams {
    /// The seed of slice `slice` of `pass`.
    pub fn seed_of(&self, pass: Pass, slice: usize) -> i64 {
        let words = [self.step, pass.word(), slice as u64];
        hashed_seed(self.run_seed, Stream::Slice, self.phase, self.epoch, &words)
    }

    /// Seeds libtorch's global generators for slice `slice` of `pass`.
    pub fn seed(&self, pass: Pass, slice: usize) {
        tch::manual_seed(self.seed_of(pass, slice));
    }
}

/// What the determinism switch did, as recorded in provenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Determinism {
    /// The switch as the experiment asked for it.
    pub requested: bool,
    /// cuDNN autotuning, read back from libtorch (`None`: libtorch lacks the getter).
    pub cudnn_benchmark: Option<bool>,
    /// `torch.use_deterministic_algorithms(True, warn_only=True)`, read back (`None`: not available).
    pub deterministic_algorithms: Option<bool>,
    /// `torch.backends.cudnn.deterministic`, read back (`None`: not available).
    pub cudnn_deterministic: Option<bool>,
    /// `CUBLAS_WORKSPACE_CONFIG` was set (deterministic cuBLAS on CUDA ≥ 10.2 needs it).
    pub cublas_workspace_config: bool,
}

impl Determinism {
    /// Applies the switch to libtorch's global context and reads the result back.
    ///
    /// On: cuDNN benchmark off, deterministic algorithms on in warn-only mode (an op without a
    /// deterministic implementation warns instead of failing the run: "deterministic where libtorch
    /// offers it"), cuDNN deterministic, `CUBLAS_WORKSPACE_CONFIG=:4096:8` unless already set (call
    /// this before the first CUDA op). Off: the official settings (benchmark on, nothing forced).
    pub fn apply(deterministic: bool) -> Determinism {
        tch::Cuda::cudnn_set_benchmark(!deterministic);
        let ctx = context::global();
        if let Some(ctx) = ctx {
            context::set_bool2(
                ctx,
                context::SET_DETERMINISTIC_ALGORITHMS,
                deterministic,
                true,
            );
            context::set_bool(ctx, context::SET_DETERMINISTIC_CUDNN, deterministic);
        }
        if deterministic && std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
            // Set before any thread reads the environment: the loops call this at start-up.
            std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
        }
        let applied = Determinism {
            requested: deterministic,
            cudnn_benchmark: ctx.and_then(|c| context::get_bool(c, context::BENCHMARK_CUDNN)),
            deterministic_algorithms: ctx
                .and_then(|c| context::get_bool(c, context::DETERMINISTIC_ALGORITHMS)),
            cudnn_deterministic: ctx
                .and_then(|c| context::get_bool(c, context::DETERMINISTIC_CUDNN)),
            cublas_workspace_config: std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_some(),
        };
        if !applied.fully_applied() {
            tracing::warn!(%applied, "the determinism switch did not take full effect");
        }
        applied
    }

    /// True when everything the switch asked for took effect.
    pub fn fully_applied(&self) -> bool {
        !self.requested
            || (self.cudnn_benchmark == Some(false)
                && self.deterministic_algorithms == Some(true)
                && self.cudnn_deterministic == Some(true))
    }
}

impl std::fmt::Display for Determinism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<bool>| match v {
            Some(true) => "on",
            Some(false) => "off",
            None => "unavailable",
        };
        write!(
            f,
            "deterministic {} (cudnn benchmark {}, deterministic algorithms {} [warn-only], cudnn deterministic {}, CUBLAS_WORKSPACE_CONFIG {})",
            if self.requested { "on" } else { "off" },
            show(self.cudnn_benchmark),
            show(self.deterministic_algorithms),
            show(self.cudnn_deterministic),
            if self.cublas_workspace_config { "set" } else { "unset" },
        )
    }
}

/// `at::Context` members through their Itanium-mangled symbols (non-virtual members take `this` as
/// the first argument; C++ `bool` is C `_Bool`, Rust `bool`).
mod context {
    use super::*;

    pub const GLOBAL_CONTEXT: &CStr = c"_ZN2at13globalContextEv";
    pub const SET_DETERMINISTIC_ALGORITHMS: &CStr =
        c"_ZN2at7Context26setDeterministicAlgorithmsEbb";
    pub const SET_DETERMINISTIC_CUDNN: &CStr = c"_ZN2at7Context21setDeterministicCuDNNEb";
    pub const DETERMINISTIC_ALGORITHMS: &CStr = c"_ZNK2at7Context23deterministicAlgorithmsEv";
    pub const DETERMINISTIC_CUDNN: &CStr = c"_ZNK2at7Context18deterministicCuDNNEv";
    pub const BENCHMARK_CUDNN: &CStr = c"_ZNK2at7Context14benchmarkCuDNNEv";

    use crate::device::libtorch_symbol as symbol;

    /// `at::globalContext()`.
    pub fn global() -> Option<*mut c_void> {
        let f = symbol(GLOBAL_CONTEXT)?;
        // SAFETY: `at::Context& at::globalContext()` returns a reference (a pointer in the ABI).
        let f: extern "C" fn() -> *mut c_void = unsafe { std::mem::transmute(f) };
        let ctx = f();
        (!ctx.is_null()).then_some(ctx)
    }

    pub fn set_bool(ctx: *mut c_void, name: &CStr, v: bool) -> bool {
        let Some(f) = symbol(name) else { return false };
        // SAFETY: `void at::Context::setX(bool)`: `this` then the bool.
        let f: extern "C" fn(*mut c_void, bool) = unsafe { std::mem::transmute(f) };
        f(ctx, v);
        true
    }

    pub fn set_bool2(ctx: *mut c_void, name: &CStr, v: bool, warn_only: bool) -> bool {
        let Some(f) = symbol(name) else { return false };
        // SAFETY: `void at::Context::setDeterministicAlgorithms(bool, bool)`.
        let f: extern "C" fn(*mut c_void, bool, bool) = unsafe { std::mem::transmute(f) };
        f(ctx, v, warn_only);
        true
    }

    pub fn get_bool(ctx: *mut c_void, name: &CStr) -> Option<bool> {
        let f = symbol(name)?;
        // SAFETY: `bool at::Context::x() const`: `this` only.
        let f: extern "C" fn(*const c_void) -> bool = unsafe { std::mem::transmute(f) };
        Some(f(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    const PINNED: i64 = 6_184_159_143_590_189_204;

    #[test]
    fn seeds_differ_across_every_coordinate_and_repeat_for_the_same_one() {
        let base = derive_seed(0, Stream::Step, Phase::Search, 3, 100);
        assert_eq!(base, derive_seed(0, Stream::Step, Phase::Search, 3, 100));
        let others = [
            derive_seed(1, Stream::Step, Phase::Search, 3, 100),
            derive_seed(0, Stream::Shuffle, Phase::Search, 3, 100),
            derive_seed(0, Stream::Step, Phase::Warmup, 3, 100),
            derive_seed(0, Stream::Step, Phase::Search, 4, 100),
            derive_seed(0, Stream::Step, Phase::Search, 3, 101),
        ];
        for o in others {
            assert_ne!(o, base);
            assert!(o >= 0);
        }
        // Pinned: a change of the hash would silently change every run's random numbers.
        assert_eq!(
            derive_seed(0, Stream::Step, Phase::Warmup, 0, 0),
            PINNED,
            "{}",
            derive_seed(0, Stream::Step, Phase::Warmup, 0, 0)
        );
    }

    #[test]
    fn slice_streams_differ_by_pass_slice_and_step_and_from_the_step_stream() {
        let at = StepStreams {
            run_seed: 0,
            phase: Phase::Search,
            epoch: 3,
            step: 100,
        };
        let base = at.seed_of(Pass::Objective(0), 0);
        assert_eq!(base, at.seed_of(Pass::Objective(0), 0));
        let next = StepStreams { step: 101, ..at };
        let others = [
            at.seed_of(Pass::Objective(1), 0),
            at.seed_of(Pass::Objective(0), 1),
            at.seed_of(Pass::Weights, 0),
            at.seed_of(Pass::LatencySample, 0),
            at.seed_of(Pass::Validation, 0),
            next.seed_of(Pass::Objective(0), 0),
            derive_seed(0, Stream::Step, Phase::Search, 3, 100),
        ];
        for (i, o) in others.iter().enumerate() {
            assert_ne!(*o, base, "coordinate {i}");
            assert!(*o >= 0);
        }
    }

    #[test]
    fn a_step_reseeded_after_other_draws_draws_the_same_numbers() {
        let draw = || Tensor::rand([4], (Kind::Float, Device::Cpu));
        seed_step(7, Phase::Search, 2, 11);
        let first = draw();
        // Anything in between (other steps, a restart) ...
        seed_step(7, Phase::Search, 2, 12);
        let _ = draw();
        let _ = draw();
        // ... does not matter once the step is reseeded.
        seed_step(7, Phase::Search, 2, 11);
        assert!(first.equal(&draw()));
    }

    #[test]
    fn the_determinism_switch_reaches_libtorch_and_reads_back() {
        let on = Determinism::apply(true);
        assert!(on.fully_applied(), "{on}");
        assert_eq!(on.deterministic_algorithms, Some(true));
        assert!(on.to_string().starts_with("deterministic on"), "{on}");
        let off = Determinism::apply(false);
        assert_eq!(off.deterministic_algorithms, Some(false));
        assert_eq!(off.cudnn_benchmark, Some(true));
        // Leave the process as other tests expect it.
        Determinism::apply(true);
    }
}
