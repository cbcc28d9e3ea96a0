//! Writes a synthetic Parquet table for scale tests and benchmarks:
//! `cargo run --release -p mmnet-arrow --example gen_parquet -- OUT ROWS [COLS] [SEED]`.
//! Columns `f0..f{COLS-1}` (float32, uniform in [0, 1)) and `label` (int8, 1 in 2 % of rows),
//! written in 65,536-row batches and row groups, so memory stays flat for any ROWS.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int8Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use mmnet_arrow::write::{ROW_GROUP_ROWS, TableWriter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: gen_parquet OUT ROWS [COLS=122] [SEED=0]");
        std::process::exit(2);
    }
    let out = std::path::PathBuf::from(&args[1]);
    let rows: usize = args[2].parse()?;
    let cols: usize = args.get(3).map_or(Ok(122), |s| s.parse())?;
    let seed: u64 = args.get(4).map_or(Ok(0), |s| s.parse())?;
    let mut fields: Vec<Field> = (0..cols)
        .map(|j| Field::new(format!("f{j}"), DataType::Float32, false))
        .collect();
    fields.push(Field::new("label", DataType::Int8, false));
    let schema = Arc::new(Schema::new(fields));
    let mut w = TableWriter::create(&out, schema.clone())?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut done = 0;
    while done < rows {
        let n = ROW_GROUP_ROWS.min(rows - done);
        let mut arrays: Vec<ArrayRef> = (0..cols)
            .map(|_| {
                Arc::new(Float32Array::from_iter_values(
                    (0..n).map(|_| rng.random::<f32>()),
                )) as ArrayRef
            })
            .collect();
        arrays.push(Arc::new(Int8Array::from_iter_values(
            (0..n).map(|_| i8::from(rng.random::<f32>() < 0.02)),
        )));
        w.write(&RecordBatch::try_new(schema.clone(), arrays)?)?;
        done += n;
    }
    w.finish()?;
    println!("{rows} rows x {cols} features written to {}", out.display());
    Ok(())
}
