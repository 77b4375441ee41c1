//! The experiment file format: schema, tiers, `--set` overrides, validation with file:line:col, and the
//! canonical id of a resolved experiment.

pub mod error;
pub mod estimator;
pub mod identity;
pub mod limits;
pub mod load;
pub mod path;
pub mod positions;
pub mod recipe;
pub mod reference;
pub mod schema;
pub mod sweep;
pub mod tier;
pub mod tiers;
pub mod validate;
pub mod width;
pub mod yaml;

pub use error::{ConfigError, ConfigIssue};
pub use estimator::Estimator;
pub use load::{load, Resolved};
pub use recipe::TrainRecipe;
pub use schema::*;
pub use sweep::load_variants;
pub use tier::Tier;
pub use width::Width;
