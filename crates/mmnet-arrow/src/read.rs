//! Reading tables as streams of Arrow record batches: Parquet and CSV are streamed (never
//! loaded whole), NPZ (small benchmark files) is read into one batch.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Result, TableError};
use crate::format::FileFormat;

/// Rows per record batch when reading.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// A stream of record batches from a file.
pub type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// An opened table: its schema, its row count when known up front, and the batches.
pub struct TableReader {
    /// Schema of the batches (after projection).
    pub schema: SchemaRef,
    /// Total rows, when the format records it (Parquet, NPZ).
    pub rows: Option<usize>,
    /// The batches.
    pub batches: BatchIter,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("schema", &self.schema)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Indices of `names` in `schema`, or an error naming the first missing column.
pub fn column_indices(path: &Path, schema: &Schema, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            schema.index_of(n).map_err(|_| TableError::MissingColumn {
                path: path.to_path_buf(),
                column: n.clone(),
                available: column_names(schema),
            })
        })
        .collect()
}

/// The schema of the table at `path`, without reading its rows (CSV: inferred from all
/// rows, so a column's type does not change after the first few thousand).
pub fn read_schema(path: &Path) -> Result<SchemaRef> {
    Ok(open(path, None, DEFAULT_BATCH_ROWS)?.schema)
}

/// Opens `path`, keeping only the columns in `projection` (all when `None`).
pub fn open(path: &Path, projection: Option<&[String]>, batch_rows: usize) -> Result<TableReader> {
    match FileFormat::from_path(path, false)? {
        FileFormat::Parquet => open_parquet(path, projection, batch_rows),
        FileFormat::Csv => open_csv(path, projection, batch_rows),
        FileFormat::Npz => open_npz(path, projection),
    }
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(TableError::io(path))
}

fn open_parquet(
    path: &Path,
    projection: Option<&[String]>,
    batch_rows: usize,
) -> Result<TableReader> {
    crate::parquet_footer::check(path)?;
    let file = open_file(path)?;
    // The parquet crate panics on some malformed files instead of returning an error (a
    // corrupted embedded Arrow schema reaches an `unimplemented!` in arrow-ipc: found by the
    // `parquet_table` fuzz target). A file is untrusted input: such a panic is caught here
    // and reported as what it is, a malformed file.
    let builder = guard(path, "reading the Parquet footer", || {
        ParquetRecordBatchReaderBuilder::try_new(file)
    })?
    .map_err(|e| TableError::malformed(path, format!("not a readable Parquet file: {e}")))?;
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).ok();
    let builder = match projection {
        Some(names) => {
            let idx = column_indices(path, builder.schema(), names)?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), idx);
            builder.with_projection(mask)
        }
        None => builder,
    };
    let reader = builder.with_batch_size(batch_rows).build()?;
    let schema = reader.schema();
    let p = path.to_path_buf();
    let mut reader = reader;
    let batches =
        std::iter::from_fn(
            move || match guard(&p, "decoding a Parquet page", || reader.next()) {
                Ok(b) => b.map(|b| {
                    b.map_err(|e| TableError::malformed(&p, format!("reading Parquet: {e}")))
                }),
                Err(e) => Some(Err(e)),
            },
        );
    Ok(TableReader {
        schema,
        rows,
        batches: Box::new(batches),
    })
}

/// Runs `f`, turning a panic inside a reader into an error naming the file.
fn guard<T>(path: &Path, what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = panic_message(p.as_ref());
        TableError::malformed(path, format!("malformed file ({what}: {msg})"))
    })
}

/// The message of a caught panic (`panic!` with a format string or a literal), for errors
/// that report a dependency's panic on hostile input as what it is.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| p.downcast_ref::<&str>().copied())
        .unwrap_or("a panic")
}

fn open_csv(path: &Path, projection: Option<&[String]>, batch_rows: usize) -> Result<TableReader> {
    let mut file = open_file(path)?;
    let format = arrow::csv::reader::Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(BufReader::new(&mut file), None)
        .map_err(|e| TableError::malformed(path, format!("not a readable CSV file: {e}")))?;
    file.rewind().map_err(TableError::io(path))?;
    let schema = Arc::new(schema);
    let mut builder = arrow::csv::ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(batch_rows);
    let out_schema = match projection {
        Some(names) => {
            let idx = column_indices(path, &schema, names)?;
            let projected = Arc::new(schema.project(&idx)?);
            builder = builder.with_projection(idx);
            projected
        }
        None => schema,
    };
    let reader = builder.build(BufReader::new(file))?;
    let p = path.to_path_buf();
    let batches =
        reader.map(move |b| b.map_err(|e| TableError::malformed(&p, format!("reading CSV: {e}"))));
    Ok(TableReader {
        schema: out_schema,
        rows: None,
        batches: Box::new(batches),
    })
}

/// A numeric NumPy array converted to f64 or i64 values, with its shape and order.
enum NpyValues {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

fn read_npy(
    path: &Path,
    npz: &mut npyz::npz::NpzArchive<BufReader<File>>,
    name: &str,
) -> Result<(Vec<u64>, bool, NpyValues)> {
    let bad = |r: String| TableError::malformed(path, format!("array `{name}`: {r}"));
    let npy = npz
        .by_name(name)
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("not in the archive".into()))?;
    let shape = npy.shape().to_vec();
    let fortran = matches!(npy.order(), npyz::Order::Fortran);
    let dtype = npy.dtype();
    let descr = match &dtype {
        npyz::DType::Plain(t) => t.to_string(),
        other => return Err(bad(format!("unsupported dtype {other:?}"))),
    };
    let code = &descr[1..];
    let conv = |e: std::io::Error| bad(format!("reading {descr}: {e}"));
    let values = match code {
        "f4" => NpyValues::Float(
            npy.into_vec::<f32>()
                .map_err(conv)?
                .into_iter()
                .map(f64::from)
                .collect(),
        ),
        "f8" => NpyValues::Float(npy.into_vec::<f64>().map_err(conv)?),
        "i1" => NpyValues::Int(
            npy.into_vec::<i8>()
                .map_err(conv)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "i2" => NpyValues::Int(
            npy.into_vec::<i16>()
                .map_err(conv)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "i4" => NpyValues::Int(
            npy.into_vec::<i32>()
                .map_err(conv)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "i8" => NpyValues::Int(npy.into_vec::<i64>().map_err(conv)?),
        "u1" | "b1" => NpyValues::Int(
            npy.into_vec::<u8>()
                .map_err(conv)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "u2" => NpyValues::Int(
            npy.into_vec::<u16>()
                .map_err(conv)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        "u4" => NpyValues::Int(
            npy.into_vec::<u32>()
                .map_err(conv)?
                .into_iter()
                .map(i64::from)
                .collect(),
        ),
        _ => {
            return Err(bad(format!(
                "unsupported dtype {descr} (numeric arrays only)"
            )));
        }
    };
    Ok((shape, fortran, values))
}

/// Reads an ADBench `.npz`: `X` (n x d) becomes float32 columns `f0..f{d-1}`, `y` becomes an
/// int64 column `label`, and every other 1-D array of length n becomes a column of its name.
fn open_npz(path: &Path, projection: Option<&[String]>) -> Result<TableReader> {
    let mut npz = npyz::npz::NpzArchive::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TableError::Io {
            path: path.to_path_buf(),
            cause: e,
        },
        _ => TableError::malformed(path, format!("not a readable .npz archive: {e}")),
    })?;
    let names: Vec<String> = npz.array_names().map(str::to_string).collect();
    if !names.iter().any(|n| n == "X") {
        return Err(TableError::malformed(
            path,
            format!(
                "no array `X` (ADBench layout: X, y); arrays present: {}",
                names.join(", ")
            ),
        ));
    }
    let (shape, fortran, x) = read_npy(path, &mut npz, "X")?;
    let [n, d] = shape[..] else {
        return Err(TableError::malformed(
            path,
            format!("`X` must be 2-D, has shape {shape:?}"),
        ));
    };
    let (n, d) = (n as usize, d as usize);
    let x: Vec<f64> = match x {
        NpyValues::Float(v) => v,
        NpyValues::Int(v) => v.into_iter().map(|i| i as f64).collect(),
    };
    let mut fields = Vec::with_capacity(d + names.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(d + names.len());
    for j in 0..d {
        let col: Float32Array = (0..n)
            .map(|i| Some(if fortran { x[j * n + i] } else { x[i * d + j] } as f32))
            .collect();
        fields.push(Field::new(format!("f{j}"), DataType::Float32, false));
        columns.push(Arc::new(col));
    }
    for name in names.iter().filter(|n| *n != "X") {
        let (shape, _, values) = read_npy(path, &mut npz, name)?;
        if shape != [n as u64] {
            return Err(TableError::malformed(
                path,
                format!("array `{name}` has shape {shape:?}, expected ({n},) like the rows of X"),
            ));
        }
        let col_name = if name == "y" {
            "label".to_string()
        } else {
            name.clone()
        };
        let (dt, arr): (DataType, ArrayRef) = match values {
            NpyValues::Float(v) => (DataType::Float64, Arc::new(Float64Array::from(v))),
            NpyValues::Int(v) => (DataType::Int64, Arc::new(Int64Array::from(v))),
        };
        fields.push(Field::new(col_name, dt, false));
        columns.push(arr);
    }
    let schema = Arc::new(Schema::new(fields));
    let mut batch = RecordBatch::try_new(schema.clone(), columns)?;
    if let Some(names) = projection {
        let idx = column_indices(path, &schema, names)?;
        batch = batch.project(&idx)?;
    }
    Ok(TableReader {
        schema: batch.schema(),
        rows: Some(n),
        batches: Box::new(std::iter::once(Ok(batch))),
    })
}
