//! SQL over tables with DataFusion: model UDFs and `f(*)` expansion.

pub mod session;
pub mod udf;
pub mod wildcard;

pub use session::{ModelRegistry, new_session, register_table};
pub use udf::{ModelUdf, SharedModel, UdfKind};
