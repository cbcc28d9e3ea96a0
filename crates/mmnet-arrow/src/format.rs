//! File formats by extension.

use std::path::Path;

use crate::error::{Result, TableError};

/// A table file format mmnet reads (and, except NPZ, writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
    /// NumPy `.npz` in the ADBench layout (arrays `X`, `y`, optional 1-D extras).
    Npz,
}

impl FileFormat {
    /// The format of `path`, from its extension (case-insensitive).
    pub fn from_path(path: &Path, writing: bool) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let f = match ext.as_str() {
            "parquet" | "pq" => FileFormat::Parquet,
            "csv" => FileFormat::Csv,
            "npz" if !writing => FileFormat::Npz,
            _ => {
                return Err(TableError::UnknownFormat {
                    path: path.to_path_buf(),
                    ext: if ext.is_empty() { "(none)".into() } else { ext },
                    writing,
                });
            }
        };
        Ok(f)
    }
}
