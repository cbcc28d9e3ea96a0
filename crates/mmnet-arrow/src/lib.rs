//! # mmnet-arrow
//!
//! Tables in, scores out: reads Parquet, CSV and ADBench `.npz` files as Arrow record
//! batches, maps columns to model features by name (any numeric type, cast to f32), and
//! writes scored tables. Rows with a null or non-finite feature get NULL scores rather than
//! failing the whole file, the SQL convention.

pub mod error;
pub mod features;
pub mod format;
pub mod parquet_footer;
pub mod read;
pub mod score_file;
#[cfg(feature = "sql")]
pub mod sql;
pub mod write;

pub use error::{Result, TableError};
pub use features::{
    Dataset, DatasetSpec, dataset_from_batches, load_dataset, read_row, row_from_batches,
};
pub use format::FileFormat;
pub use score_file::{ScoreSummary, TopRow, score_file};
