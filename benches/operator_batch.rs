//! The Kafka operator's CPU work per record, without a broker: one consumed batch of JSON
//! telemetry -> decoded rows -> scores -> encoded score records (`batch::Scorer::prepare`,
//! what the operator runs on its blocking thread for every micro-batch).
//!
//! `cargo bench -p mmnet-kafka --bench operator_batch`. The end-to-end figure against a
//! Python consumer on a real broker is `make bench-kafka`; this one isolates the part mmnet
//! controls, so a change to decoding, scoring or encoding shows here without the broker's
//! and the network's noise. Data and shape: Spambase (57 features, memory 32), as in
//! `make bench-kafka` (the model here is trained for 2 epochs only: timing, not quality).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use criterion::{Criterion, Throughput};
use mmnet_arrow::{DatasetSpec, load_dataset};
use mmnet_core::{FitConfig, ModelParams, TrainData, TrainParams};
use mmnet_kafka::batch::{RawBatch, Scorer};
use mmnet_kafka::config::{InputFormat, OutputFormat};
use mmnet_kafka::decode::Decoder;
use ndarray::Axis;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Timestamp};

/// The operator's default `batch.max_messages`.
const BATCH: usize = 1024;

fn main() {
    // Spambase as shipped in data/, the rows `make bench-kafka` replays.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/spambase.parquet");
    let spec = DatasetSpec {
        label_column: "label".into(),
        ..Default::default()
    };
    let ds = load_dataset(&path, &spec).expect("data/spambase.parquet");
    let features = ds.features.clone();
    let (normal, anomalous): (Vec<usize>, Vec<usize>) =
        (0..ds.labels.len()).partition(|&i| !ds.labels[i]);
    let model = mmnet_core::fit(
        TrainData {
            features: &features,
            unlabeled: ds.x.select(Axis(0), &normal).view(),
            labeled: ds.x.select(Axis(0), &anomalous[..30]).view(),
        },
        &FitConfig {
            model: ModelParams::default().with_memory_size(32),
            train: TrainParams {
                epochs: 2,
                ..Default::default()
            },
            ..Default::default()
        },
        &mut mmnet_core::train::Silent,
    )
    .expect("training the bench model");
    let scorer = Scorer {
        decoder: Decoder::new(&features, InputFormat::Auto, 1 << 20),
        digest: "0".repeat(64),
        name: "bench".into(),
        threshold: None,
        format: OutputFormat::Json,
        has_dlq: true,
        explain: None,
        shadow: None,
        drift: false,
        model,
    };
    // Payloads as `mmnet produce` writes them: Arrow's JSON writer, one object per row.
    let schema = Arc::new(Schema::new(
        features
            .iter()
            .map(|f| Field::new(f, DataType::Float32, false))
            .collect::<Vec<_>>(),
    ));
    let rows = ds.x.slice(ndarray::s![..BATCH, ..]);
    let columns: Vec<ArrayRef> = rows
        .columns()
        .into_iter()
        .map(|c| Arc::new(Float32Array::from_iter_values(c.iter().copied())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema, columns).expect("batch");
    let mut lines = Vec::new();
    let mut w = arrow::json::LineDelimitedWriter::new(&mut lines);
    w.write(&batch).expect("json");
    w.finish().expect("json");
    drop(w);
    let messages: Vec<OwnedMessage> = lines
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            OwnedMessage::new(
                Some(line.to_vec()),
                Some(format!("device-{}", i % 97).into_bytes()),
                "telemetry".into(),
                Timestamp::CreateTime(1_700_000_000_000 + i as i64),
                (i % 3) as i32,
                i as i64,
                None,
            )
        })
        .collect();
    assert_eq!(messages.len(), BATCH);
    let bytes: usize = messages
        .iter()
        .map(|m| m.payload().map_or(0, <[u8]>::len))
        .sum();
    eprintln!(
        "{BATCH} messages, {:.0} bytes each on average",
        bytes as f64 / BATCH as f64
    );

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("operator_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("json_in_json_out", |b| {
        b.iter_batched(
            || {
                let mut raw = RawBatch::new();
                for m in &messages {
                    raw.push(m.clone());
                }
                raw
            },
            |raw| {
                let p = scorer.prepare(raw).expect("prepare");
                assert_eq!(p.scored_rows, BATCH);
                p
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
    c.final_summary();
}
