//! Datasets: CIFAR-10/100, ImageNet folders, the embedded synthetic dataset (spec §1.5, §6).
//!
//! [`open`] turns a `config::Dataset` into a [`Dataset`]: CIFAR and synthetic are held resident on the
//! run's device (uint8 `[N,3,32,32]` + int64 `[N]`), ImageNet is a list of files decoded on demand.
//! [`split::search_split`] makes UNAS's weight/validation split; [`loader`] turns a split into batches
//! (shuffled per epoch from the run's seed, augmented on the device, resumable at (epoch, position)).

pub mod augment;
pub mod batch;
pub(crate) mod bench;
pub mod cifar;
pub(crate) mod cli;
pub mod dataset;
pub mod fetch;
pub mod fingerprint;
pub mod identity;
pub mod image_list;
pub mod imagenet;
pub(crate) mod inspect;
pub mod loader;
pub mod memory_format;
pub mod normalization;
pub mod open;
pub mod presence;
pub mod rng;
pub mod share;
pub mod split;
pub mod synthetic;
pub mod tensor_split;

pub use augment::AugmentSpec;
pub use dataset::{Dataset, Splits};
pub use image_list::ImageList;
pub use imagenet::{ImageNetSource, ImageNetTransform};
pub use loader::{Batch, BatchSource, Loader, LoaderState, ResidentSource};
pub use normalization::Normalization;
pub use open::open;
pub use split::{search_split, SearchSplit};
pub use tensor_split::TensorSplit;
