//! Valid inputs for each target: the starting corpus of the coverage-guided fuzzer
//! (`make fuzz` writes them to fuzz/seeds/) and what the property tests mutate. Built from
//! the same code paths users feed (the fixture model's files, Arrow's own writers, the
//! shipped pipeline files), so mutations start deep inside each format.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::targets::fixture_manifest;

fn fixture_file(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mmnet-core/tests/fixtures/model-v1")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A small table over the fixture model's features (+ `label`), f64 or f32 columns, with
/// or without nulls.
fn batch(rows: usize, f32_cols: bool, with_nulls: bool) -> RecordBatch {
    let features = &fixture_manifest().features;
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (j, f) in features.iter().enumerate() {
        let vals = (0..rows).map(|i| {
            if with_nulls && i == 1 && j == 0 {
                None
            } else {
                Some((i * 7 + j) as f64 * 0.25 - 1.0)
            }
        });
        if f32_cols {
            fields.push(Field::new(f, DataType::Float32, true));
            cols.push(Arc::new(
                vals.map(|v| v.map(|x| x as f32)).collect::<Float32Array>(),
            ));
        } else {
            fields.push(Field::new(f, DataType::Float64, true));
            cols.push(Arc::new(vals.collect::<Float64Array>()));
        }
    }
    fields.push(Field::new("label", DataType::Int64, false));
    cols.push(Arc::new(Int64Array::from_iter_values(
        (0..rows).map(|i| (i % 4 == 3) as i64),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("seed batch")
}

fn ipc(b: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &b.schema()).expect("ipc");
    w.write(b).expect("ipc write");
    w.finish().expect("ipc finish");
    drop(w);
    out
}

fn csv(b: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = arrow::csv::Writer::new(&mut out);
    w.write(b).expect("csv write");
    drop(w);
    out
}

fn parquet(b: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, b.schema(), None).expect("pq");
    w.write(b).expect("pq write");
    w.close().expect("pq close");
    out
}

fn json_rows() -> Vec<Vec<u8>> {
    let f = &fixture_manifest().features;
    let obj = |v: &dyn Fn(usize) -> String| {
        let fields: Vec<String> = f
            .iter()
            .enumerate()
            .map(|(j, n)| format!("\"{n}\":{}", v(j)))
            .collect();
        format!("{{{}}}", fields.join(",")).into_bytes()
    };
    vec![
        obj(&|j| format!("{}", j as f64 * 0.5)),
        obj(&|j| if j == 2 { "null".into() } else { "1e-3".into() }),
        obj(&|j| if j == 0 { "\"x\"".into() } else { "-2".into() }),
        obj(&|_| "3.4e38".into()),
        br#"{"a":1,"b":[1,2],"c":{"d":1},"e":true}"#.to_vec(),
    ]
}

/// The seeds of the target called `name` (empty for an unknown name).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "json_message" => json_rows(),
        "arrow_message" => vec![
            ipc(&batch(3, false, false)),
            ipc(&batch(2, true, true)),
            ipc(&batch(0, false, false)),
        ],
        "manifest" => vec![fixture_file("manifest.json")],
        "safetensors" => vec![fixture_file("weights.safetensors")],
        "operator_config" => {
            let mut v = vec![mmnet_kafka::OperatorConfig::template().as_bytes().to_vec()];
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
            if let Ok(rd) = std::fs::read_dir(dir) {
                let mut files: Vec<_> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                v.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
            }
            v
        }
        "csv_table" => vec![csv(&batch(6, false, false)), csv(&batch(3, false, true))],
        "parquet_table" => vec![
            parquet(&batch(6, false, false)),
            parquet(&batch(4, true, true)),
        ],
        _ => Vec::new(),
    }
}
