//! The one error type of `mmnet-arrow`: every variant names the file, column or row a user
//! has to look at.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = TableError> = std::result::Result<T, E>;

/// Errors reading tables, mapping them to features and writing results.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be opened or read.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause (shown in the message, so not chained as a source).
        cause: std::io::Error,
    },
    /// The extension is not one mmnet reads or writes.
    #[error("{path}: unknown file type `{ext}` ({})", if *.writing { "output must be .parquet or .csv" } else { "expected .parquet, .csv or .npz" })]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// Its extension.
        ext: String,
        /// Whether the file was to be written.
        writing: bool,
    },
    /// The file's contents are not valid for its format.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A column the model or the command needs is not in the table.
    #[error("{path}: column `{column}` not found (the table has: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// Columns present, comma-separated.
        available: String,
    },
    /// A feature column is not numeric.
    #[error("{path}: column `{column}` has type {data_type}, which is not numeric; {hint}")]
    NonNumeric {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: String,
        /// How to proceed.
        hint: String,
    },
    /// A value is missing or not finite where training needs one.
    #[error("{path}: column `{column}`, data row {row} (0-based): {problem}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Row (0-based, counting data rows of the whole file).
        row: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// An Arrow error (casting, CSV or IPC).
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Parquet error.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A model error.
    #[error(transparent)]
    Core(#[from] mmnet_core::CoreError),
}

impl TableError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TableError {
        let path = path.into();
        move |cause| TableError::Io { path, cause }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> TableError {
        TableError::Malformed {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
