//! Offline scoring of a file: stream record batches in, append scores, stream them out.
//! Memory is bounded by the batch size, whatever the file size.

use std::path::Path;

use mmnet_core::Model;
use mmnet_core::kernel::Threads;

use arrow::record_batch::RecordBatch;

use crate::error::{Result, TableError};
use crate::features::{check_feature_columns, value_slices};
use crate::read::{DEFAULT_BATCH_ROWS, open};
use crate::write::{TableWriter, append_scores, scored_schema};

/// One of the highest-scored rows.
#[derive(Debug, Clone, PartialEq)]
pub struct TopRow {
    /// Data row (0-based) in the input.
    pub row: usize,
    /// `mmnet_score`.
    pub score: f32,
    /// S_sum.
    pub s_sum: f32,
    /// S_KL.
    pub s_kl: f32,
    /// Whether it is above the threshold.
    pub is_anomaly: bool,
}

impl Eq for TopRow {}
impl PartialOrd for TopRow {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TopRow {
    /// Reversed, so a `BinaryHeap` is a min-heap on score and keeps the `k` largest; ties
    /// keep the earlier row.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.row.cmp(&other.row))
    }
}

/// Totals of a scoring run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreSummary {
    /// Rows read and written.
    pub rows: usize,
    /// Rows with a score (complete features).
    pub scored: usize,
    /// Rows flagged as anomalies.
    pub anomalies: usize,
    /// Rows whose features were null or not finite (scores written as NULL).
    pub incomplete: usize,
    /// The highest-scored rows, best first (as many as asked for).
    pub top: Vec<TopRow>,
}

/// Batches in flight between the reader, scorer and writer threads. With 8192-row batches
/// this bounds the pipeline's buffers to a few tens of MB whatever the file size.
const PIPELINE_DEPTH: usize = 2;

/// Scores every row of `input` into `output`: the input columns plus `mmnet_score`,
/// `s_sum`, `s_kl`, `is_anomaly`. Features are matched by name; a missing one is an error
/// naming it. `on_batch(rows_so_far, total_rows_if_known)` reports progress.
///
/// Three stages run at once so decoding, scoring and encoding overlap on the cores: a reader
/// thread decodes batches, this thread scores them (itself parallel for large batches), and a
/// writer thread encodes them. Bounded channels between the stages keep memory flat: a slow
/// writer stalls the scorer, which stalls the reader.
pub fn score_file(
    model: &Model,
    input: &Path,
    output: &Path,
    threshold: Option<f32>,
    top: usize,
    on_batch: &mut dyn FnMut(usize, Option<usize>),
) -> Result<ScoreSummary> {
    let reader = open(input, None, DEFAULT_BATCH_ROWS)?;
    let cols = check_feature_columns(input, &reader.schema, &model.features)?;
    let schema = scored_schema(input, &reader.schema)?;
    let writer = TableWriter::create(output, schema.clone())?;
    let total = reader.rows;
    let (in_tx, in_rx) = std::sync::mpsc::sync_channel::<Result<RecordBatch>>(PIPELINE_DEPTH);
    let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<RecordBatch>(PIPELINE_DEPTH);
    std::thread::scope(|scope| {
        let batches = reader.batches;
        scope.spawn(move || {
            for b in batches {
                let stop = b.is_err();
                // A closed channel means the scorer stopped (on an error): stop reading.
                if in_tx.send(b).is_err() || stop {
                    break;
                }
            }
        });
        let write_handle = scope.spawn(move || -> Result<()> {
            let mut writer = writer;
            for b in out_rx {
                writer.write(&b)?;
            }
            writer.finish()?;
            Ok(())
        });
        let scored = score_batches(
            model, &cols, schema, threshold, top, in_rx, out_tx, total, on_batch,
        );
        // The writer ends when `out_tx` is dropped (inside score_batches); join it to learn
        // whether every batch reached the file.
        let written = write_handle
            .join()
            .unwrap_or_else(|_| Err(TableError::malformed(output, "writer thread panicked")));
        let summary = scored?;
        written?;
        Ok(summary)
    })
}

#[allow(clippy::too_many_arguments)]
fn score_batches(
    model: &Model,
    cols: &[usize],
    schema: arrow::datatypes::SchemaRef,
    threshold: Option<f32>,
    top: usize,
    in_rx: std::sync::mpsc::Receiver<Result<RecordBatch>>,
    out_tx: std::sync::mpsc::SyncSender<RecordBatch>,
    total: Option<usize>,
    on_batch: &mut dyn FnMut(usize, Option<usize>),
) -> Result<ScoreSummary> {
    let mut s = ScoreSummary::default();
    let mut heap = std::collections::BinaryHeap::with_capacity(top + 1);
    for batch in in_rx {
        let batch = batch?;
        let (x, valid) = crate::features::batch_features(&batch, cols)?;
        let scored = model.score_columns(&value_slices(&x), false, threshold, Threads::Rayon)?;
        let out = append_scores(&batch, schema.clone(), &scored, &valid)?;
        if top > 0 {
            for (i, &ok) in valid.iter().enumerate() {
                if !ok {
                    continue;
                }
                heap.push(TopRow {
                    row: s.rows + i,
                    score: scored.score[i],
                    s_sum: scored.raw.s_sum[i],
                    s_kl: scored.raw.s_kl[i],
                    is_anomaly: scored.is_anomaly[i],
                });
                if heap.len() > top {
                    heap.pop();
                }
            }
        }
        s.rows += batch.num_rows();
        let ok = valid.iter().filter(|&&v| v).count();
        s.scored += ok;
        s.incomplete += batch.num_rows() - ok;
        s.anomalies += scored
            .is_anomaly
            .iter()
            .zip(&valid)
            .filter(|&(&a, &v)| a && v)
            .count();
        if out_tx.send(out).is_err() {
            // The writer stopped on an error; it reports it when joined.
            break;
        }
        on_batch(s.rows, total);
    }
    s.top = heap.into_sorted_vec();
    Ok(s)
}
