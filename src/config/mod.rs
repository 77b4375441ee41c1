//! The experiment file format: schema, tiers, `--set` overrides, validation with file:line:col, and the
//! canonical id of a resolved experiment.
//!
//! The public face is what a tool of one's own needs to read, resolve and identify an experiment: the
//! schema's types, [`load`] (or [`parse_experiment`] + [`resolve`] for text), the tiers, the id, the
//! training recipe and the estimator choice. The modules behind it are the crate's.

pub(crate) mod error;
pub(crate) mod estimator;
pub(crate) mod identity;
pub(crate) mod limits;
pub(crate) mod load;
pub(crate) mod path;
pub(crate) mod positions;
pub(crate) mod recipe;
pub(crate) mod reference;
pub(crate) mod schema;
pub(crate) mod supernet;
pub(crate) mod sweep;
pub(crate) mod tier;
pub(crate) mod tiers;
pub(crate) mod validate;
pub(crate) mod width;
pub(crate) mod yaml;

pub use error::{ConfigError, ConfigIssue};
pub use estimator::Estimator;
pub use identity::config_id;
pub use load::{load, parse_experiment, resolve, Resolved};
pub use path::{FieldPath, Seg};
pub use positions::Pos;
pub use recipe::TrainRecipe;
pub use schema::{
    Dataset, DatasetName, DeviceChoice, Experiment, GenotypeChoice, ImageShape, Latency,
    LatencyMeasure, LrScale, Objective, ObjectiveKind, Precision, Protocol, Recipe, Sampling,
    Search, SearchEpochs, SearchLr, Seeds, Space, SpaceName, Statistics, SyntheticSpec, Train,
    WeightDecay,
};
pub use supernet::ProxylessSupernet;
pub use sweep::load_variants;
pub use tier::Tier;
pub use tiers::{Tiers, EMBEDDED_TIERS};
pub use width::Width;
