//! What Python may pass as data: a path, or anything that speaks the Arrow PyCapsule
//! interface. Arrow data is imported without copying its buffers.

use std::path::PathBuf;

use arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::ArrowArrayStreamReader;
use arrow::pyarrow::FromPyArrow;
use mmnet_arrow::TableError;
use mmnet_arrow::read::{BatchIter, DEFAULT_BATCH_ROWS, open};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// Data handed in from Python.
pub enum Input {
    /// A .parquet, .csv or .npz file, read by mmnet as the CLI reads it.
    File(PathBuf),
    /// Arrow record batches (a pyarrow Table or RecordBatch, a polars or pandas DataFrame...),
    /// named in errors by `source` (`<pyarrow.lib.Table>`) the way a path names a file.
    Arrow {
        source: PathBuf,
        reader: Box<dyn RecordBatchReader + Send>,
    },
}

impl Input {
    /// Reads `obj`: `str`/`os.PathLike` is a file; an object with `__arrow_c_stream__` (a
    /// table or stream) or `__arrow_c_array__` (a record batch) is Arrow data.
    pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Input> {
        if let Ok(p) = obj.extract::<PathBuf>() {
            return Ok(Input::File(p));
        }
        let name = obj
            .get_type()
            .fully_qualified_name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "object".into());
        let source = PathBuf::from(format!("<{name}>"));
        if obj.hasattr("__arrow_c_stream__")? {
            let reader = ArrowArrayStreamReader::from_pyarrow_bound(obj)?;
            return Ok(Input::Arrow {
                source,
                reader: Box::new(reader),
            });
        }
        if obj.hasattr("__arrow_c_array__")? {
            let batch = RecordBatch::from_pyarrow_bound(obj)?;
            let schema = batch.schema();
            return Ok(Input::Arrow {
                source,
                reader: Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema)),
            });
        }
        Err(PyTypeError::new_err(format!(
            "expected a path (.parquet, .csv or .npz) or Arrow data (a pyarrow Table or \
             RecordBatch, a polars or pandas DataFrame: anything with __arrow_c_stream__ or \
             __arrow_c_array__), got {name}"
        )))
    }

    /// The name errors use, the schema, and the batches (files streamed in 8192-row batches,
    /// Arrow data as it comes).
    pub fn open(self) -> Result<(PathBuf, SchemaRef, BatchIter), TableError> {
        match self {
            Input::File(path) => {
                let t = open(&path, None, DEFAULT_BATCH_ROWS)?;
                Ok((path, t.schema, t.batches))
            }
            Input::Arrow { source, reader } => {
                let schema = reader.schema();
                let batches = reader.map(|b| b.map_err(TableError::from));
                Ok((source, schema, Box::new(batches)))
            }
        }
    }
}
