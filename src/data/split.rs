//! UNAS's search split (`utils.my_random_split`): a permutation of the training set from a generator
//! seeded with 0; the first ⌊portion·N⌋ indices train the weights, the rest is the validation split.
//!
//! The permutation is `torch.randperm(N, generator=torch.Generator().manual_seed(0))`, reproduced
//! bit-exactly by our own [`Mt19937`] (PyTorch's CPU engine), so the split never touches — and never
//! disturbs — the run's torch generator. `rng::tests` checks it against `tch::Tensor::randperm`.

use crate::data::rng::Mt19937;

/// The generator seed of `my_random_split` (fixed in UNAS, independent of the run's seed).
pub const SPLIT_SEED: u64 = 0;

/// Indices into the training set: `train` updates the weights w, `valid` the distribution α.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchSplit {
    pub train: Vec<i64>,
    pub valid: Vec<i64>,
}

/// Splits a training set of `n` samples: `train` = perm[..⌊portion·n⌋], `valid` = the rest.
pub fn search_split(n: usize, portion: f64) -> SearchSplit {
    let perm = Mt19937::new(SPLIT_SEED).randperm(n);
    // split = ⌊train_portion · num_train⌋
    let split = ((portion * n as f64).floor() as usize).min(n);
    SearchSplit {
        train: perm[..split].to_vec(),
        valid: perm[split..].to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar_search_split_is_45k_5k_disjoint_and_complete() {
        let s = search_split(50_000, 0.9);
        assert_eq!((s.train.len(), s.valid.len()), (45_000, 5_000));
        let mut all: Vec<i64> = s.train.iter().chain(&s.valid).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50_000).collect::<Vec<_>>());
    }

    #[test]
    fn search_split_is_the_same_every_call() {
        assert_eq!(search_split(1000, 0.5), search_split(1000, 0.5));
        assert_ne!(search_split(1000, 0.5).train, (0..500).collect::<Vec<_>>());
    }
}
