//! The Parquet footer check (src/parquet_footer.rs) on real files: the input AFL++ found is
//! refused with an error naming the file and the schema element, before the parquet crate
//! reserves what its footer claims; every well-formed file (flat, nested, the shipped data)
//! passes it unchanged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float32Array, Int64Array, StructArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use mmnet_arrow::{parquet_footer, read};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_fuzzer_found_footer_is_refused_by_name_before_parquet_reads_it() {
    let path =
        repo().join("fuzz/regressions/parquet_table/afl-schema-num-children-6.9GB-reserve.parquet");
    let e = read::open(&path, None, 1024).unwrap_err().to_string();
    assert!(e.contains("afl-schema-num-children"), "names the file: {e}");
    assert!(
        e.contains("malformed Parquet footer: schema element"),
        "{e}"
    );
    assert!(e.contains("children, but"), "{e}");
}

#[test]
fn well_formed_files_pass_flat_and_nested() {
    let dir = tempfile::tempdir().unwrap();
    let x: ArrayRef = Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0]));
    let id: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let inner = StructArray::from(vec![
        (
            Arc::new(Field::new("x", DataType::Float32, false)),
            x.clone(),
        ),
        (
            Arc::new(Field::new("id", DataType::Int64, false)),
            id.clone(),
        ),
    ]);
    let outer = StructArray::from(vec![(
        Arc::new(Field::new("inner", inner.data_type().clone(), false)),
        Arc::new(inner) as ArrayRef,
    )]);
    let batch = RecordBatch::try_from_iter(vec![
        ("id", id),
        ("x", x),
        ("nested", Arc::new(outer) as ArrayRef),
    ])
    .unwrap();
    let path = dir.path().join("nested.parquet");
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    parquet_footer::check(&path).unwrap();
    let t = read::open(&path, None, 1024).unwrap();
    assert_eq!(t.rows, Some(3));

    let shipped = repo().join("data/spambase.parquet");
    parquet_footer::check(&shipped).unwrap();
}

#[test]
fn files_that_are_not_parquet_are_left_to_the_parquet_crate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.parquet");
    std::fs::write(&path, b"PAR1").unwrap();
    parquet_footer::check(&path).unwrap();
    let e = read::open(&path, None, 1024).unwrap_err().to_string();
    assert!(e.contains("not a readable Parquet file"), "{e}");
}
