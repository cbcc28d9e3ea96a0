//! SQL over tables with DataFusion: model UDFs and `f(*)` expansion.

pub mod session;
pub mod store;
pub mod udf;
pub mod wildcard;

pub use session::{
    ModelRegistry, loads_into_memory, new_session, new_session_with, read_table,
    reads_through_datafusion, register_table,
};
pub use store::{StorageOptions, StoreRegistry};
pub use udf::{ModelUdf, SharedModel, UdfKind};
