//! The Kafka operator against a real broker (Tansu, installed by `make tansu`): every input
//! offset accounted for, crash safety under SIGKILL, consumer-group rebalance, dead letters,
//! exactly-once on the commit path, Arrow IPC in and out.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod kafka_support;

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_support::*;

#[test]
fn end_to_end_100k_records_every_offset_scored() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("telemetry", 3);
    broker.create_topic("scores", 3);
    let out = produce(
        &broker,
        "telemetry",
        &["--repeat", "24", "--limit", "100000"],
    );
    assert!(out.contains("produced 100000 rows"), "{out}");
    let expected = broker.offsets("telemetry", 100_000);

    let op = Operator::start(
        &broker,
        dir.path(),
        "op",
        &group_args("telemetry", "scores", "g"),
    );
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(240), |r| {
        r.len() >= 100_000
    });
    let log = op.log();
    assert!(op.terminate(), "operator exited with an error:\n{log}");
    assert_all_scored(&expected, &scores);
    assert_eq!(
        scores.len(),
        100_000,
        "a clean run scores every record once"
    );
    // Keys are kept: the producer keyed each row by its row number.
    let v = scores[0].json();
    assert_eq!(
        v["key"].as_str().map(str::as_bytes),
        scores[0].key.as_deref()
    );
    assert!(v["mmnet_score"].is_number() && v["model"]["digest"].as_str().unwrap().len() == 64);
    // After SIGTERM everything is committed.
    assert_eq!(
        broker.committed("g", "telemetry", 3),
        next_offsets(&expected)
    );
}

#[test]
fn sigkill_three_times_loses_nothing() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("telemetry", 3);
    broker.create_topic("scores", 3);
    // A stream that keeps flowing while the operator is killed three times (each restart
    // waits ~10 s for the dead member's session to expire): 45,000 rows at 1,000 rows/s.
    let addr = broker.addr.clone();
    let producer = std::thread::spawn(move || {
        let data = spambase();
        ok(&[
            "produce",
            "--data",
            data.to_str().unwrap(),
            "--brokers",
            &addr,
            "--topic",
            "telemetry",
            "--repeat",
            "11",
            "--limit",
            "45000",
            "--rate",
            "1000",
        ])
    });
    let args = group_args("telemetry", "scores", "g");
    let mut kills = 0;
    // Killed before and after its first offset commit (every 1 s).
    for delay_ms in [300, 1500, 2500] {
        let op = Operator::start(&broker, dir.path(), "op", &args);
        op.wait_scored(500.0, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(delay_ms));
        assert!(
            !producer.is_finished(),
            "the stream must still flow at kill {}",
            kills + 1
        );
        op.kill9();
        kills += 1;
    }
    producer.join().unwrap();
    let expected = broker.offsets("telemetry", 45_000);
    let op = Operator::start(&broker, dir.path(), "op", &args);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(120), |r| {
        r.len() >= 45_000 && sources(r).is_superset(&expected)
    });
    let log = op.log();
    assert!(op.terminate(), "final operator failed:\n{log}");
    assert_eq!(kills, 3);
    assert_all_scored(&expected, &scores);
    eprintln!(
        "sigkill: {} inputs, {} score records ({} duplicates from replay)",
        expected.len(),
        scores.len(),
        scores.len() - expected.len()
    );
}

#[test]
fn two_instances_share_partitions_and_survive_a_rebalance() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("telemetry", 6);
    broker.create_topic("scores", 6);
    let args = group_args("telemetry", "scores", "shared");
    let a = Operator::start(&broker, dir.path(), "a", &args);
    let b = Operator::start(&broker, dir.path(), "b", &args);
    a.wait_assigned(Duration::from_secs(30));
    b.wait_assigned(Duration::from_secs(30));
    // Both members hold partitions: the six are split between them.
    let pa = a.metric("mmnet_assigned_partitions");
    let pb = b.metric("mmnet_assigned_partitions");
    assert_eq!(pa + pb, 6.0, "a has {pa}, b has {pb}");
    let addr = broker.addr.clone();
    let producer = std::thread::spawn(move || {
        let data = spambase();
        ok(&[
            "produce",
            "--data",
            data.to_str().unwrap(),
            "--brokers",
            &addr,
            "--topic",
            "telemetry",
            "--repeat",
            "3",
            "--limit",
            "12000",
            "--rate",
            "3000",
        ])
    });
    // b has scored part of the stream (its partitions') before it leaves.
    b.wait_scored(500.0, Duration::from_secs(60));
    let b_scored = b.metric("mmnet_records_out_total");
    // b leaves mid-stream; a takes over its partitions.
    assert!(
        !producer.is_finished(),
        "the stream must still flow when b leaves"
    );
    assert!(b.terminate(), "b did not stop cleanly");
    producer.join().unwrap();
    let expected = broker.offsets("telemetry", 12_000);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(120), |r| {
        r.len() >= 12_000 && sources(r).is_superset(&expected)
    });
    let a_scored = a.metric("mmnet_records_out_total");
    let a_parts = a.metric("mmnet_assigned_partitions");
    assert!(a.terminate(), "a did not stop cleanly");
    assert_all_scored(&expected, &scores);
    assert_eq!(a_parts, 6.0, "a should own every partition after b left");
    assert!(a_scored > 0.0 && b_scored > 0.0);
    assert_eq!(
        broker.committed("shared", "telemetry", 6),
        next_offsets(&expected)
    );
}

/// Produces raw payloads (with a header on each) straight to a topic.
fn json_row(features: &[String], f: impl Fn(&str) -> String) -> Vec<u8> {
    let fields: Vec<String> = features
        .iter()
        .map(|n| format!("\"{n}\": {}", f(n)))
        .collect();
    format!("{{\"device\": \"d1\", {}}}", fields.join(", ")).into_bytes()
}

/// A valid row except that the first feature holds `value` (raw JSON text).
fn first_is(features: &[String], value: &str) -> Vec<u8> {
    json_row(features, |n| {
        if n == features[0] {
            value.into()
        } else {
            "0.5".into()
        }
    })
}

fn features() -> Vec<String> {
    model_features(&model())
}

/// An Arrow IPC stream with the model's features as Float64, `bad_row` holding a NaN.
fn arrow_payload(
    features: &[String],
    rows: usize,
    bad_row: Option<usize>,
    drop_col: bool,
) -> Vec<u8> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    let skip = usize::from(drop_col);
    let fields: Vec<Field> = features[skip..]
        .iter()
        .map(|n| Field::new(n, DataType::Float64, true))
        .collect();
    let cols: Vec<ArrayRef> = features[skip..]
        .iter()
        .map(|_| {
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|r| if Some(r) == bad_row { f64::NAN } else { 0.1 }),
            )) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let mut buf = Vec::new();
    let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    buf
}

#[test]
fn malformed_records_go_to_the_dead_letter_topic_with_reasons() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    for t in ["telemetry", "scores", "dlq"] {
        broker.create_topic(t, 1);
    }
    let f = features();
    let without_first: Vec<String> = f[1..].to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("valid", json_row(&f, |_| "0.5".into()), ""),
        (
            "invalid_json",
            b"{\"word_freq_make\": 0.1,".to_vec(),
            "invalid_json",
        ),
        ("not_an_object", b"[0.1, 0.2]".to_vec(), "not_an_object"),
        (
            "missing",
            json_row(&without_first, |_| "0.5".into()),
            "missing_feature",
        ),
        ("non_numeric", first_is(&f, "\"high\""), "non_numeric"),
        ("null", first_is(&f, "null"), "null_value"),
        ("nan", first_is(&f, "NaN"), "non_finite"),
        ("empty", Vec::new(), "empty"),
        ("oversized", vec![b' '; 200_000], "oversized"),
        (
            "bad_arrow",
            {
                let mut p = arrow_payload(&f, 2, None, false);
                p.truncate(40);
                p
            },
            "invalid_arrow",
        ),
        (
            "arrow_schema",
            arrow_payload(&f, 2, None, true),
            "arrow_schema",
        ),
        (
            "arrow_nan_row",
            arrow_payload(&f, 3, Some(1), false),
            "non_finite",
        ),
    ];
    let payloads: Vec<(&str, Vec<u8>)> = cases.iter().map(|(k, p, _)| (*k, p.clone())).collect();
    produce_raw(&broker, "telemetry", &payloads);
    let mut args = group_args("telemetry", "scores", "g");
    args.extend_from_slice(&["--dlq-topic", "dlq"]);
    let mut toml = dir.path().to_path_buf();
    toml.push("small.toml");
    std::fs::write(&toml, "[input]\nmax_message_bytes = 100000\n").unwrap();
    args.extend_from_slice(&["--config", toml.to_str().unwrap()]);
    let op = Operator::start(&broker, dir.path(), "op", &args);
    let dead = read_until(&broker.addr, "dlq", Duration::from_secs(60), |r| {
        r.len() >= 11
    });
    // The valid JSON row, and the two good rows of the Arrow message with one NaN row.
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(30), |r| {
        r.len() >= 3
    });
    let dlq_metric = op.metric("mmnet_dead_letters_total{reason=\"non_finite\"}");
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    assert_eq!(
        dead.len(),
        11,
        "dead letters: {:?}",
        dead.iter().map(|d| &d.headers).collect::<Vec<_>>()
    );
    assert_eq!(scores.len(), 3);
    assert_eq!(dlq_metric, 2.0);
    for (key, payload, reason) in cases.iter().filter(|c| !c.2.is_empty()) {
        let d = dead
            .iter()
            .find(|d| d.key.as_deref() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("no dead letter for {key}"));
        assert_eq!(
            d.headers["mmnet.dlq.reason"], *reason,
            "{key}: {:?}",
            d.headers
        );
        assert_eq!(
            &d.payload, payload,
            "{key}: payload must be the original bytes"
        );
        assert_eq!(d.headers["trace-id"], *key, "original headers kept");
        assert_eq!(d.headers["mmnet.source.topic"], "telemetry");
        assert_eq!(d.headers["mmnet.source.partition"], "0");
        assert!(!d.headers["mmnet.dlq.error"].is_empty());
        assert_eq!(d.headers["mmnet.model.digest"].len(), 64);
    }
    let partial = dead
        .iter()
        .find(|d| d.key.as_deref() == Some(b"arrow_nan_row"))
        .unwrap();
    assert_eq!(partial.headers["mmnet.dlq.rows"], "1");
    let rows: BTreeSet<i64> = scores
        .iter()
        .filter(|s| s.key.as_deref() == Some(b"arrow_nan_row"))
        .map(|s| s.json()["source"]["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, BTreeSet::from([0, 2]));
    assert_eq!(
        broker.committed("g", "telemetry", 1)[&0],
        cases.len() as i64
    );
}

#[test]
fn without_a_dead_letter_topic_a_bad_record_stops_the_operator_uncommitted() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("telemetry", 1);
    broker.create_topic("scores", 1);
    let f = features();
    produce_raw(
        &broker,
        "telemetry",
        &[
            ("ok", json_row(&f, |_| "0.5".into())),
            ("bad", b"not json".to_vec()),
        ],
    );
    let mut op = Operator::start(
        &broker,
        dir.path(),
        "op",
        &group_args("telemetry", "scores", "g"),
    );
    let status = op.child.wait().unwrap();
    let log = op.log();
    assert!(!status.success());
    assert!(
        log.contains("telemetry/0@1")
            && log.contains("invalid_json")
            && log.contains("--dlq-topic"),
        "{log}"
    );
    // The good record before it was scored and committed; the bad one was not committed.
    assert_eq!(broker.committed("g", "telemetry", 1)[&0], 1);
}

/// `--profile low-latency`: every record scored once, and each one's latency (receipt to
/// acknowledgement of its score record) in `mmnet_record_latency_seconds`.
#[test]
fn low_latency_profile_scores_everything_and_times_every_record() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("telemetry", 2);
    broker.create_topic("scores", 2);
    produce(&broker, "telemetry", &["--limit", "3000"]);
    let expected = broker.offsets("telemetry", 3000);
    let mut args = group_args("telemetry", "scores", "ll");
    args.extend_from_slice(&["--profile", "low-latency"]);
    let op = Operator::start(&broker, dir.path(), "op", &args);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(90), |r| {
        r.len() >= 3000
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while op.metric("mmnet_record_latency_seconds_count") < 3000.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "latency not counted:\n{}",
            op.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(op.metric("mmnet_record_latency_seconds_count"), 3000.0);
    let sum = op.metric("mmnet_record_latency_seconds_sum");
    assert!(sum > 0.0 && sum < 3000.0 * 60.0, "{sum}");
    // Every bucket count is at most the total (cumulative), and the +Inf bucket is all.
    assert_eq!(
        op.metric("mmnet_record_latency_seconds_bucket{le=\"+Inf\"}"),
        3000.0
    );
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    assert_eq!(scores.len(), 3000, "a clean run scores every record once");
    assert_all_scored(&expected, &scores);
}

#[test]
fn exactly_once_commits_scores_and_offsets_together() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("telemetry", 3);
    broker.create_topic("scores", 3);
    produce(&broker, "telemetry", &["--limit", "3000"]);
    let expected = broker.offsets("telemetry", 3000);
    let mut args = group_args("telemetry", "scores", "eos");
    args.extend_from_slice(&["--guarantee", "exactly-once"]);
    let op = Operator::start(&broker, dir.path(), "op", &args);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(90), |r| {
        r.len() >= 3000
    });
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    assert_eq!(
        scores.len(),
        3000,
        "no duplicates in a clean exactly-once run"
    );
    assert_all_scored(&expected, &scores);
    assert_eq!(
        broker.committed("eos", "telemetry", 3),
        next_offsets(&expected)
    );
}

#[test]
fn arrow_ipc_in_and_out() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("telemetry", 2);
    broker.create_topic("scores", 2);
    let out = produce(
        &broker,
        "telemetry",
        &["--format", "arrow", "--rows-per-message", "250"],
    );
    assert!(out.contains("produced 4207 rows in 18 messages"), "{out}");
    let mut args = group_args("telemetry", "scores", "g");
    args.extend_from_slice(&["--output-format", "arrow"]);
    let op = Operator::start(&broker, dir.path(), "op", &args);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(60), |r| {
        r.len() >= 18
    });
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    let mut rows = 0;
    for s in &scores {
        let r = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(&s.payload), None)
            .unwrap();
        for b in r {
            let b = b.unwrap();
            assert_eq!(b.schema().field(5).name(), "mmnet_score");
            rows += b.num_rows();
        }
    }
    assert_eq!(scores.len(), 18);
    assert_eq!(rows, 4207);
}

#[test]
fn bad_operator_arguments_fail_with_one_clear_line() {
    let out = mmnet(&[
        "kafka",
        "--model",
        "/nonexistent",
        "--input-topic",
        "a",
        "--output-topic",
        "b",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("no such model directory").count(), 1, "{err}");
    let out = mmnet(&["kafka", "--input-topic", "a", "--output-topic", "b"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.path: no model given"));
    let out = mmnet(&[
        "kafka",
        "--model",
        "m",
        "--input-topic",
        "a",
        "--output-topic",
        "a",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must differ from the input topic"));
    let out = mmnet(&["produce", "--data", "/nonexistent.parquet", "--topic", "t"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.matches("/nonexistent.parquet").count() == 1,
        "{err}"
    );
}

#[test]
fn explain_adds_memory_and_features_to_every_json_record() {
    let dir = workdir();
    let broker = Broker::start(dir.path());
    broker.create_topic("telemetry", 1);
    broker.create_topic("scores", 1);
    let out = produce(&broker, "telemetry", &["--limit", "50"]);
    assert!(out.contains("produced 50 rows"), "{out}");
    let mut args = group_args("telemetry", "scores", "g");
    args.push("--explain");
    let op = Operator::start(&broker, dir.path(), "op", &args);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(60), |r| {
        r.len() >= 50
    });
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    assert_eq!(scores.len(), 50);
    for s in &scores {
        let v: serde_json::Value = serde_json::from_slice(&s.payload).unwrap();
        let e = &v["explain"];
        // The defaults: 3 memory items, 5 features, ordered, shares in [0, 1].
        let memory = e["memory"].as_array().unwrap();
        let features = e["features"].as_array().unwrap();
        assert_eq!((memory.len(), features.len()), (3, 5), "{v}");
        let w: Vec<f64> = memory
            .iter()
            .map(|m| m["weight"].as_f64().unwrap())
            .collect();
        assert!(w.windows(2).all(|p| p[0] >= p[1]), "{v}");
        assert!(
            features
                .iter()
                .all(|f| (0.0..=1.0).contains(&f["share"].as_f64().unwrap()))
        );
    }
}
