//! # mmnet-cluster
//!
//! mmnet's SQL surface on an Apache DataFusion Ballista cluster: the same plans and the same
//! model functions, run by Ballista's own scheduler over many executors. Nothing here
//! schedules anything; it starts Ballista's processes through their library entry points
//! with mmnet's pieces plugged in where Ballista asks for them:
//!
//! - the scheduler re-plans every query, so its session builder registers the model
//!   functions, the `*` rewrite and the object stores ([`scheduler`]);
//! - an executor deserialises plan fragments by function name, so its function registry
//!   holds the same functions over the model *it* loaded, and its runtime reads the same
//!   object stores ([`executor`]);
//! - the client plans with its own copy of the model ([`remote_session`]); every model call
//!   carries that model's digest (mmnet-arrow's digest pin), so a scheduler or executor that
//!   loaded another model version refuses the query with both digests instead of mixing
//!   versions.
//!
//! Every process loads the model from a directory it can read itself: the model is never
//! shipped with a query.

mod models;
mod process;
mod session;

pub use models::{LoadedModels, ModelSpec};
pub use process::{ExecutorOptions, SchedulerOptions, executor, scheduler};
pub use session::{model_state, remote_session};

/// Errors of the cluster surface.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A model could not be loaded or registered.
    #[error("model {path}: {cause}")]
    Model {
        /// Its directory.
        path: String,
        /// Why.
        cause: String,
    },
    /// A setting is wrong (address, port, directory).
    #[error("{0}")]
    Config(String),
    /// DataFusion refused something.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Ballista refused something or stopped.
    #[error("ballista: {0}")]
    Ballista(String),
    /// Tables and stores.
    #[error(transparent)]
    Table(#[from] mmnet_arrow::TableError),
}

impl From<ballista_core::error::BallistaError> for ClusterError {
    fn from(e: ballista_core::error::BallistaError) -> Self {
        ClusterError::Ballista(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
