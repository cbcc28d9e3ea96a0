//! SQL path vs core kernel, measured side by side in one run (issue: SQL keeps >= 80 % of the
//! kernel's rows/s). Not a test: prints numbers and ratios.
//!
//! `cargo bench -p mmnet-arrow --bench sql_vs_kernel` (env ROWS, default 1,000,000; 122
//! features, memory 64: the NSL-KDD shape).
//!
//! 1. kernel: `Model::score` on rows already in memory, in 8192-row batches (DataFusion's
//!    batch size), the two cores used as the scorer uses them;
//! 2. SQL over an in-memory table: `SELECT mmnet_score(*)`, so the difference to (1) is the
//!    UDF's own overhead (casting, row-major copy, NULL mask, DataFusion plumbing);
//! 3. SQL over the same rows in a Parquet file: adds Parquet decoding, what a user runs.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use mmnet_arrow::sql::{ModelRegistry, new_session, register_table};
use mmnet_core::{FitConfig, ModelParams, TrainData, TrainParams};
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const D: usize = 122;
const BATCH: usize = 8192;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Array2::from_shape_simple_fn((rows, D), || rng.random::<f32>());
    let features: Vec<String> = (0..D).map(|j| format!("f{j}")).collect();
    // A model of the real shape; one short epoch is enough for timing.
    let model = mmnet_core::fit(
        TrainData {
            features: &features,
            unlabeled: x.slice(ndarray::s![..2048, ..]),
            labeled: x.slice(ndarray::s![2048..2078, ..]),
        },
        &FitConfig {
            model: ModelParams::default().with_memory_size(64),
            train: TrainParams {
                epochs: 1,
                ..Default::default()
            },
            ..Default::default()
        },
        &mut mmnet_core::train::Silent,
    )?;

    // Columnar copy of the same rows for DataFusion.
    let schema = Arc::new(Schema::new(
        features
            .iter()
            .map(|f| Field::new(f, DataType::Float32, false))
            .collect::<Vec<_>>(),
    ));
    let batches: Vec<RecordBatch> = x
        .axis_chunks_iter(Axis(0), BATCH)
        .map(|chunk| {
            let cols: Vec<ArrayRef> = chunk
                .columns()
                .into_iter()
                .map(|c| Arc::new(Float32Array::from_iter_values(c.iter().copied())) as ArrayRef)
                .collect();
            RecordBatch::try_new(schema.clone(), cols)
        })
        .collect::<Result<_, _>>()?;
    let dir = tempfile::tempdir()?;
    let pq = dir.path().join("bench.parquet");
    let mut w = mmnet_arrow::write::TableWriter::create(&pq, schema.clone())?;
    for b in &batches {
        w.write(b)?;
    }
    w.finish()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The session `mmnet sql` runs (two partitions per core).
    let ctx = new_session();
    ModelRegistry::default().register(&ctx, "mmnet", model.clone())?;
    let parts = 2;
    let per = batches.len().div_ceil(parts);
    let partitions: Vec<Vec<RecordBatch>> = batches.chunks(per).map(|c| c.to_vec()).collect();
    ctx.register_table(
        "mem",
        Arc::new(MemTable::try_new(schema.clone(), partitions)?),
    )?;
    rt.block_on(register_table(&ctx, "pq", &pq.to_string_lossy()))?;

    let sql = |table: &str| -> Result<f64, Box<dyn std::error::Error>> {
        let q = format!("SELECT count(mmnet_score(*)) FROM {table}");
        let t = Instant::now();
        let out = rt.block_on(async { ctx.sql(&q).await?.collect().await })?;
        let n = arrow::util::pretty::pretty_format_batches(&out)?.to_string();
        assert!(n.contains(&rows.to_string()), "{n}");
        Ok(rows as f64 / t.elapsed().as_secs_f64())
    };
    let kernel = || -> Result<f64, Box<dyn std::error::Error>> {
        let t = Instant::now();
        let mut n = 0usize;
        for chunk in x.axis_chunks_iter(Axis(0), BATCH) {
            n += model.score(chunk, false, None)?.score.len();
        }
        assert_eq!(n, rows);
        Ok(rows as f64 / t.elapsed().as_secs_f64())
    };
    // Warm up, then interleave the three so machine noise hits them alike; best of 3.
    kernel()?;
    sql("mem")?;
    let (mut k, mut m, mut p) = (0f64, 0f64, 0f64);
    for _ in 0..3 {
        k = k.max(kernel()?);
        m = m.max(sql("mem")?);
        p = p.max(sql("pq")?);
    }
    println!("rows {rows}, features {D}, memory 64, batch {BATCH} (best of 3, interleaved)");
    println!("kernel (Model::score, in memory)   {:>12.0} rows/s", k);
    println!(
        "SQL mmnet_score(*) over MemTable   {:>12.0} rows/s  ratio {:.2}",
        m,
        m / k
    );
    println!(
        "SQL mmnet_score(*) over Parquet    {:>12.0} rows/s  ratio {:.2}",
        p,
        p / k
    );
    Ok(())
}
