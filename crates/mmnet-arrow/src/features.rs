//! Mapping table columns to model features: by name, any numeric Arrow type cast to f32.

use std::path::Path;

use arrow::array::{Array, AsArray, Float32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type, Float64Type, Schema};
use arrow::record_batch::RecordBatch;
use ndarray::{Array2, ShapeBuilder};

use crate::error::{Result, TableError};
use crate::read::{DEFAULT_BATCH_ROWS, column_indices, open};

/// Whether a column of this type can be a feature (cast to f32).
pub fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric() || matches!(dt, DataType::Boolean)
}

/// The feature columns of a training table: every column except the label, the type column
/// and `exclude`, in table order. A non-numeric column is an error naming it.
pub fn training_features(
    path: &Path,
    schema: &Schema,
    not_features: &[&str],
    exclude: &[String],
) -> Result<Vec<String>> {
    column_indices(path, schema, exclude)?;
    let mut out = Vec::new();
    for f in schema.fields() {
        let name = f.name();
        if not_features.contains(&name.as_str()) || exclude.contains(name) {
            continue;
        }
        if !is_numeric(f.data_type()) {
            return Err(TableError::NonNumeric {
                path: path.to_path_buf(),
                column: name.clone(),
                data_type: f.data_type().to_string(),
                hint: format!("exclude it with `--exclude {name}` or convert it to numbers"),
            });
        }
        out.push(name.clone());
    }
    if out.is_empty() {
        return Err(TableError::malformed(
            path,
            "no feature columns left after excluding the label and --exclude columns",
        ));
    }
    Ok(out)
}

/// Checks that every column of `names` exists in `schema` and is numeric.
pub fn check_feature_columns(path: &Path, schema: &Schema, names: &[String]) -> Result<Vec<usize>> {
    let idx = column_indices(path, schema, names)?;
    for &i in &idx {
        let f = schema.field(i);
        if !is_numeric(f.data_type()) {
            return Err(TableError::NonNumeric {
                path: path.to_path_buf(),
                column: f.name().clone(),
                data_type: f.data_type().to_string(),
                hint: "the model needs a number here".into(),
            });
        }
    }
    Ok(idx)
}

/// The feature columns of one batch as f32 (see [`f32_columns`]) and whether each row is
/// complete (no null, no NaN, no infinity); score them with
/// [`mmnet_core::Model::score_columns`].
pub fn batch_features(
    batch: &RecordBatch,
    columns: &[usize],
) -> Result<(Vec<Float32Array>, Vec<bool>)> {
    let arrays: Vec<&dyn Array> = columns.iter().map(|&c| batch.column(c).as_ref()).collect();
    f32_columns(&arrays, batch.num_rows())
}

/// Column-major (Fortran-order) f32 features from one array per feature (any numeric type,
/// cast), and the completeness of each row; incomplete rows hold zeros and must not be
/// reported as scored. For callers that need a matrix (the Kafka operator joins the rows of
/// many messages); a single batch is better scored in place ([`f32_columns`]).
pub fn arrays_to_features(arrays: &[&dyn Array], rows: usize) -> Result<(Array2<f32>, Vec<bool>)> {
    // Column-major: each feature column is copied into one contiguous run, the way Arrow
    // holds it. A row-major target scattered every value to a different cache line (a
    // transpose per batch); the scoring kernel reads this layout column by column.
    let (cols, valid) = f32_columns(arrays, rows)?;
    let mut x = Array2::<f32>::zeros((rows, arrays.len()).f());
    for (col, mut dst) in cols.iter().zip(x.columns_mut()) {
        for ((o, &v), &ok) in dst.iter_mut().zip(&col.values()[..rows]).zip(&valid) {
            if ok {
                *o = v;
            }
        }
    }
    Ok((x, valid))
}

/// Each array cast to f32 (an `Arc` clone when it already is), and whether each row is
/// complete: no null, NaN or infinity in any of them. Values in incomplete rows are
/// unspecified (a null slot holds whatever Arrow left there) and must not be reported as
/// scored. The SQL functions score these columns in place
/// ([`mmnet_core::Model::score_columns`]): no copy into a matrix per batch.
pub fn f32_columns(arrays: &[&dyn Array], rows: usize) -> Result<(Vec<Float32Array>, Vec<bool>)> {
    let mut valid = vec![true; rows];
    let mut out = Vec::with_capacity(arrays.len());
    for arr in arrays {
        let col = cast(*arr, &DataType::Float32)?;
        let col = col.as_primitive::<Float32Type>().clone();
        let values = &col.values()[..rows];
        if let Some(nulls) = col.nulls().filter(|n| n.null_count() > 0) {
            for (ok, present) in valid.iter_mut().zip(nulls.iter()) {
                *ok &= present;
            }
        }
        // One branch-free pass in the common case; row by row only when something is off.
        if !values.iter().all(|v| v.is_finite()) {
            for (ok, v) in valid.iter_mut().zip(values) {
                *ok &= v.is_finite();
            }
        }
        out.push(col);
    }
    Ok((out, valid))
}

/// The values of each column of [`f32_columns`], one slice per feature, as
/// [`mmnet_core::Model::score_columns`] takes them.
pub fn value_slices(cols: &[Float32Array]) -> Vec<&[f32]> {
    cols.iter().map(|c| c.values().as_ref()).collect()
}

/// A table loaded for training or evaluation.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Feature names, in column order of `x`.
    pub features: Vec<String>,
    /// Raw feature values.
    pub x: Array2<f32>,
    /// Label per row (true = anomaly).
    pub labels: Vec<bool>,
    /// Anomaly type per row, when a type column was asked for.
    pub types: Option<Vec<i64>>,
}

impl Dataset {
    /// D_u (rows labeled 0) and D_l (rows labeled 1) for training, in table order. No labeled
    /// row is an error naming `source` and the label column: MMNet needs a few.
    pub fn training_parts(
        &self,
        source: &Path,
        label_column: &str,
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let lab: Vec<usize> = (0..self.labels.len()).filter(|&i| self.labels[i]).collect();
        let unl: Vec<usize> = (0..self.labels.len())
            .filter(|&i| !self.labels[i])
            .collect();
        if lab.is_empty() {
            return Err(TableError::malformed(
                source,
                format!(
                    "no labeled anomalies: no row has `{label_column}` = 1 (MMNet needs a few labeled anomalies)"
                ),
            ));
        }
        let take = |rows: &[usize]| self.x.select(ndarray::Axis(0), rows);
        Ok((take(&unl), take(&lab)))
    }
}

/// What to load from a labeled table.
#[derive(Debug, Clone, Default)]
pub struct DatasetSpec {
    /// Label column (values 0/1). Default `label`.
    pub label_column: String,
    /// Columns that are neither features nor label.
    pub exclude: Vec<String>,
    /// Optional anomaly-type column (integers).
    pub type_column: Option<String>,
    /// Feature columns to use, in this order; `None` = every remaining numeric column.
    pub features: Option<Vec<String>>,
}

/// Loads a labeled table, reading only the columns it needs. Nulls, NaN or infinity in a
/// feature, and labels other than 0/1, are errors naming the column and row.
pub fn load_dataset(path: &Path, spec: &DatasetSpec) -> Result<Dataset> {
    let schema = crate::read::read_schema(path)?;
    let (features, wanted) = dataset_columns(path, &schema, spec)?;
    let reader = open(path, Some(&wanted), DEFAULT_BATCH_ROWS)?;
    collect_dataset(path, features, spec, reader.batches)
}

/// [`load_dataset`] for record batches already in memory (from Python, say): `source` names
/// them in errors the way a path names a file. Every batch must have `schema`.
pub fn dataset_from_batches(
    source: &Path,
    schema: &Schema,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
    spec: &DatasetSpec,
) -> Result<Dataset> {
    let (features, wanted) = dataset_columns(source, schema, spec)?;
    let idx = crate::read::column_indices(source, schema, &wanted)?;
    let projected = batches.into_iter().map(move |b| Ok(b?.project(&idx)?));
    collect_dataset(source, features, spec, projected)
}

/// The feature columns of a labeled table and every column to read (features, then the
/// label, then the type column if any).
fn dataset_columns(
    path: &Path,
    schema: &Schema,
    spec: &DatasetSpec,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut not_features = vec![spec.label_column.as_str()];
    if let Some(t) = &spec.type_column {
        not_features.push(t.as_str());
    }
    let features = match &spec.features {
        Some(f) => {
            check_feature_columns(path, schema, f)?;
            f.clone()
        }
        None => training_features(path, schema, &not_features, &spec.exclude)?,
    };
    let mut wanted = features.clone();
    wanted.push(spec.label_column.clone());
    if let Some(t) = &spec.type_column {
        wanted.push(t.clone());
    }
    // The label and type columns must exist too: named here, not as a bad index later.
    crate::read::column_indices(path, schema, &wanted)?;
    Ok((features, wanted))
}

/// Reads batches holding the features, the label and the type column (in that order, as
/// [`dataset_columns`] lists them) into a [`Dataset`], checking every value.
fn collect_dataset(
    path: &Path,
    features: Vec<String>,
    spec: &DatasetSpec,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
) -> Result<Dataset> {
    let d = features.len();
    let feat_idx: Vec<usize> = (0..d).collect();
    let mut rows: Vec<f32> = Vec::new();
    let mut labels = Vec::new();
    let mut types = spec.type_column.as_ref().map(|_| Vec::new());
    let mut offset = 0usize;
    for batch in batches {
        let batch = batch?;
        let (x, valid) = batch_features(&batch, &feat_idx)?;
        if let Some(i) = valid.iter().position(|v| !v) {
            let (col, problem) = first_bad_value(&batch, &feat_idx, i, &features)?;
            return Err(TableError::BadValue {
                path: path.to_path_buf(),
                column: col,
                row: offset + i,
                problem,
            });
        }
        // Row-major, as `Dataset::x` is.
        rows.extend((0..batch.num_rows()).flat_map(|i| x.iter().map(move |c| c.value(i))));
        let lab = batch.column(d);
        labels.extend(label_values(
            path,
            &spec.label_column,
            lab.as_ref(),
            offset,
        )?);
        if let (Some(t), Some(tc)) = (&mut types, &spec.type_column) {
            t.extend(int_values(path, tc, batch.column(d + 1).as_ref(), offset)?);
        }
        offset += batch.num_rows();
    }
    let x = Array2::from_shape_vec((offset, d), rows)
        .map_err(|e| TableError::malformed(path, format!("internal shape error: {e}")))?;
    Ok(Dataset {
        features,
        x,
        labels,
        types,
    })
}

/// Reads row `row` (0-based) of a table's `features` columns, in that order, streaming
/// batches up to it. A row past the end, or a null / non-finite value in it, is an error
/// naming the file (and the column and row).
pub fn read_row(path: &Path, features: &[String], row: usize) -> Result<Array2<f32>> {
    let schema = crate::read::read_schema(path)?;
    check_feature_columns(path, &schema, features)?;
    let reader = open(path, Some(features), DEFAULT_BATCH_ROWS)?;
    find_row(path, features, row, reader.batches)
}

/// [`read_row`] over record batches in memory, named `source` in errors.
pub fn row_from_batches(
    source: &Path,
    schema: &Schema,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
    features: &[String],
    row: usize,
) -> Result<Array2<f32>> {
    let idx = check_feature_columns(source, schema, features)?;
    let projected = batches.into_iter().map(move |b| Ok(b?.project(&idx)?));
    find_row(source, features, row, projected)
}

/// Row `row` of batches holding exactly the `features` columns, in order.
fn find_row(
    path: &Path,
    features: &[String],
    row: usize,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
) -> Result<Array2<f32>> {
    let idx: Vec<usize> = (0..features.len()).collect();
    let mut offset = 0usize;
    for batch in batches {
        let batch = batch?;
        let n = batch.num_rows();
        if row < offset + n {
            let one = batch.slice(row - offset, 1);
            let (x, valid) = batch_features(&one, &idx)?;
            if !valid[0] {
                let (column, problem) = first_bad_value(&one, &idx, 0, features)?;
                return Err(TableError::BadValue {
                    path: path.to_path_buf(),
                    column,
                    row,
                    problem,
                });
            }
            return Ok(Array2::from_shape_fn((1, x.len()), |(_, j)| x[j].value(0)));
        }
        offset += n;
    }
    Err(TableError::malformed(
        path,
        format!("row {row} does not exist (the table has {offset} rows, numbered from 0)"),
    ))
}

fn first_bad_value(
    batch: &RecordBatch,
    cols: &[usize],
    row: usize,
    names: &[String],
) -> Result<(String, String)> {
    for (j, &c) in cols.iter().enumerate() {
        let col = cast(batch.column(c), &DataType::Float64)?;
        let col = col.as_primitive::<Float64Type>();
        if col.is_null(row) {
            return Ok((names[j].clone(), "missing value (null)".into()));
        }
        let v = col.value(row);
        if !v.is_finite() {
            return Ok((names[j].clone(), format!("value {v} is not finite")));
        }
    }
    Ok(("?".into(), "invalid value".into()))
}

/// Integer values of a column (for anomaly types).
fn int_values(path: &Path, name: &str, col: &dyn Array, offset: usize) -> Result<Vec<i64>> {
    let as_f = cast(col, &DataType::Float64)?;
    let as_f = as_f.as_primitive::<Float64Type>();
    (0..as_f.len())
        .map(|i| {
            let v = as_f.value(i);
            if as_f.is_null(i) || v.fract() != 0.0 || !v.is_finite() {
                Err(TableError::BadValue {
                    path: path.to_path_buf(),
                    column: name.to_string(),
                    row: offset + i,
                    problem: if as_f.is_null(i) {
                        "missing value (null)".into()
                    } else {
                        format!("{v} is not an integer")
                    },
                })
            } else {
                Ok(v as i64)
            }
        })
        .collect()
}

/// Labels of a column: 0 = unlabeled/normal, 1 = anomaly; anything else is an error.
fn label_values(path: &Path, name: &str, col: &dyn Array, offset: usize) -> Result<Vec<bool>> {
    if !is_numeric(col.data_type()) {
        return Err(TableError::NonNumeric {
            path: path.to_path_buf(),
            column: name.to_string(),
            data_type: col.data_type().to_string(),
            hint: "labels must be 0 (unlabeled) or 1 (anomaly)".into(),
        });
    }
    let as_f = cast(col, &DataType::Float64)?;
    let as_f = as_f.as_primitive::<Float64Type>();
    (0..as_f.len())
        .map(|i| {
            let bad = |problem: String| TableError::BadValue {
                path: path.to_path_buf(),
                column: name.to_string(),
                row: offset + i,
                problem,
            };
            if as_f.is_null(i) {
                return Err(bad("missing label (null); labels must be 0 or 1".into()));
            }
            match as_f.value(i) {
                0.0 => Ok(false),
                1.0 => Ok(true),
                v => Err(bad(format!("label {v} is not 0 or 1"))),
            }
        })
        .collect()
}
