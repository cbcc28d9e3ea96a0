//! The one error type of `mmnet-core`.
//!
//! Variants a user can act on (bad data, bad parameters, a damaged model file) carry the
//! detail needed to fix it; `Internal` marks what would be a bug in mmnet itself.

use std::path::PathBuf;

/// Result alias used throughout `mmnet-core`.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in training, scoring or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A hyperparameter failed validation.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter's name as the CLI and config spell it.
        name: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// Input data has the wrong shape.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// Which array.
        what: String,
        /// Expected shape, in words.
        expected: String,
        /// Actual shape.
        got: String,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("non-finite value {value} in {what} at row {row}, feature `{feature}`")]
    NonFinite {
        /// Which data set.
        what: String,
        /// Row index (0-based) in that data set.
        row: usize,
        /// Feature name.
        feature: String,
        /// The offending value.
        value: f32,
    },
    /// Training needs something the data does not have.
    #[error("training data: {0}")]
    Data(String),
    /// Training diverged (a loss became NaN or infinite).
    #[error("training diverged at epoch {epoch}: loss is {loss}")]
    Diverged {
        /// Epoch (0-based) in which the loss stopped being finite.
        epoch: usize,
        /// The loss value.
        loss: f64,
    },
    /// A model artifact could not be read or failed a check.
    #[error("model at {path}: {reason}")]
    Artifact {
        /// File or directory of the model.
        path: PathBuf,
        /// What is wrong, in words a user can act on.
        reason: String,
    },
    /// An I/O error, with the path it concerns.
    #[error("{path}: {cause}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: std::io::Error,
    },
    /// A bug in mmnet: please report it.
    #[error("internal error (a bug in mmnet): {0}")]
    Internal(String),
}

impl CoreError {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        CoreError::InvalidParam {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn artifact(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        CoreError::Artifact {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
