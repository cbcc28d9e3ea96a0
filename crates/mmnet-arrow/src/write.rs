//! Writing record batches to Parquet or CSV, and appending score columns to a batch.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use mmnet_core::ScoredBatch;
use parquet::arrow::ArrowWriter;

use crate::error::{Result, TableError};
use crate::format::FileFormat;

/// Rows per Parquet row group written by mmnet.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Names of the columns appended by scoring, in order.
pub const SCORE_COLUMNS: [&str; 4] = ["mmnet_score", "s_sum", "s_kl", "is_anomaly"];

/// The input schema plus the score columns (all nullable: incomplete rows get NULL).
pub fn scored_schema(path: &Path, input: &Schema) -> Result<SchemaRef> {
    if let Some(c) = SCORE_COLUMNS.iter().find(|c| input.index_of(c).is_ok()) {
        return Err(TableError::malformed(
            path,
            format!(
                "the input already has a column `{c}`; rename it so the score columns can be added"
            ),
        ));
    }
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(SCORE_COLUMNS[0], DataType::Float32, true));
    fields.push(Field::new(SCORE_COLUMNS[1], DataType::Float32, true));
    fields.push(Field::new(SCORE_COLUMNS[2], DataType::Float32, true));
    fields.push(Field::new(SCORE_COLUMNS[3], DataType::Boolean, true));
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        input.metadata().clone(),
    )))
}

/// Appends the score columns to `batch`; rows with `valid[i] == false` get NULLs.
pub fn append_scores(
    batch: &RecordBatch,
    schema: SchemaRef,
    scored: &ScoredBatch,
    valid: &[bool],
) -> Result<RecordBatch> {
    let f = |v: &[f32]| -> ArrayRef {
        Arc::new(
            v.iter()
                .zip(valid)
                .map(|(&s, &ok)| ok.then_some(s))
                .collect::<Float32Array>(),
        )
    };
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols.push(f(&scored.score));
    cols.push(f(&scored.raw.s_sum));
    cols.push(f(&scored.raw.s_kl));
    cols.push(Arc::new(
        scored
            .is_anomaly
            .iter()
            .zip(valid)
            .map(|(&a, &ok)| ok.then_some(a))
            .collect::<BooleanArray>(),
    ));
    Ok(RecordBatch::try_new(schema, cols)?)
}

enum Sink {
    Parquet(ArrowWriter<BufWriter<File>>),
    Csv(arrow::csv::Writer<BufWriter<File>>),
}

/// A Parquet or CSV file being written batch by batch.
pub struct TableWriter {
    path: PathBuf,
    sink: Sink,
    rows: usize,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl TableWriter {
    /// Creates `path` (format from its extension) for batches of `schema`.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let format = FileFormat::from_path(path, true)?;
        let file = BufWriter::new(File::create(path).map_err(TableError::io(path))?);
        let sink = match format {
            FileFormat::Parquet => {
                // Row groups are buffered in memory until full; the default (1M rows) would
                // hold ~0.5 GB for 122 float columns. 64k rows keeps the writer small.
                let mut props = parquet::file::properties::WriterProperties::builder()
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .set_compression(parquet::basic::Compression::SNAPPY);
                // Float telemetry rarely repeats exactly: a dictionary per float column costs
                // memory while writing (up to 1 MB each before falling back) and decode time
                // for every reader, and buys nothing. Other columns keep dictionaries.
                for f in schema.fields() {
                    if f.data_type().is_floating() {
                        props = props.set_column_dictionary_enabled(
                            parquet::schema::types::ColumnPath::from(f.name().as_str()),
                            false,
                        );
                    }
                }
                Sink::Parquet(ArrowWriter::try_new(file, schema, Some(props.build()))?)
            }
            FileFormat::Csv => Sink::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file),
            ),
            FileFormat::Npz => unreachable!("from_path refuses npz for writing"),
        };
        Ok(TableWriter {
            path: path.to_path_buf(),
            sink,
            rows: 0,
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.sink {
            Sink::Parquet(w) => w.write(batch)?,
            Sink::Csv(w) => w.write(batch)?,
        }
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Flushes and closes the file; returns the rows written.
    pub fn finish(self) -> Result<usize> {
        match self.sink {
            Sink::Parquet(w) => {
                w.close()?;
            }
            Sink::Csv(w) => {
                let mut inner = w.into_inner();
                std::io::Write::flush(&mut inner).map_err(TableError::io(&self.path))?;
            }
        }
        Ok(self.rows)
    }
}

/// Writes a feature matrix (float32 columns named `features`) plus int8 columns `extra`
/// to a Parquet or CSV file. Used to export experiment splits for other tools.
pub fn write_matrix(
    path: &Path,
    features: &[String],
    x: ndarray::ArrayView2<f32>,
    extra: &[(&str, Vec<i8>)],
) -> Result<()> {
    let mut fields: Vec<Field> = features
        .iter()
        .map(|f| Field::new(f, DataType::Float32, false))
        .collect();
    let mut cols: Vec<ArrayRef> = x
        .columns()
        .into_iter()
        .map(|c| Arc::new(Float32Array::from_iter_values(c.iter().copied())) as ArrayRef)
        .collect();
    for (name, v) in extra {
        fields.push(Field::new(*name, DataType::Int8, false));
        cols.push(Arc::new(arrow::array::Int8Array::from(v.clone())));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    let mut w = TableWriter::create(path, schema)?;
    w.write(&batch)?;
    w.finish()?;
    Ok(())
}
