//! Models changing while the stream runs (issue 16), against a real broker (Tansu): hot
//! swaps by SIGHUP and by a flipped symlink mid-stream, a corrupt model refused, shadow
//! scoring equal to scoring each model offline.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod kafka_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kafka_support::*;

/// A model trained on Spambase with `seed` (different seeds: different digests, same
/// features).
fn model_with_seed(dir: &Path, seed: u64) -> PathBuf {
    let out = dir.join(format!("model-{seed}"));
    train_spambase(&out, &["--seed", &seed.to_string(), "--score", "mse_logit"]);
    out
}

fn digest(model: &Path) -> String {
    manifest(model)["weights"]["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Points `link` at `target` atomically (a new symlink renamed over the old one), the way
/// roll-outs flip a `current` link.
fn flip(link: &Path, target: &Path) {
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

fn produce_rows(broker: &Broker, topic: &str, limit: usize, repeat: usize) {
    let (limit, repeat) = (limit.to_string(), repeat.to_string());
    produce(broker, topic, &["--limit", &limit, "--repeat", &repeat]);
}

/// A broker with `telemetry` and `scores` topics of `partitions` partitions.
fn broker_with_topics(dir: &Path, partitions: u32) -> Broker {
    let broker = Broker::start(dir);
    broker.create_topic("telemetry", partitions);
    broker.create_topic("scores", partitions);
    broker
}

fn start(broker: &Broker, dir: &Path, model: &Path, group: &str, extra: &[&str]) -> Operator {
    let mut args = vec![
        "--input-topic",
        "telemetry",
        "--output-topic",
        "scores",
        "--group",
        group,
    ];
    args.extend_from_slice(extra);
    Operator::start_with_model(broker, dir, group, model, &args)
}

fn wait_metric(op: &Operator, line: &str, at_least: f64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while op.metric(line) < at_least {
        assert!(
            Instant::now() < deadline,
            "{line} stayed below {at_least}:\n{}",
            op.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Per partition, the digests of its score records in input-offset order, run-length
/// encoded: `[(digest, count), ...]`.
fn digest_runs(scores: &[Read]) -> BTreeMap<i64, Vec<(String, usize)>> {
    let mut by_part: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    for r in scores {
        let v = r.json();
        by_part
            .entry(v["source"]["partition"].as_i64().unwrap())
            .or_default()
            .push((
                v["source"]["offset"].as_i64().unwrap(),
                v["model"]["digest"].as_str().unwrap().to_string(),
            ));
    }
    by_part
        .into_iter()
        .map(|(p, mut v)| {
            v.sort();
            let mut runs: Vec<(String, usize)> = Vec::new();
            for (_, d) in v {
                match runs.last_mut() {
                    Some((last, n)) if *last == d => *n += 1,
                    _ => runs.push((d, 1)),
                }
            }
            (p, runs)
        })
        .collect()
}

#[test]
fn two_hot_swaps_mid_stream_lose_nothing_and_never_go_back() {
    let dir = workdir();
    let (a, b, c) = (
        model_with_seed(dir.path(), 1),
        model_with_seed(dir.path(), 2),
        model_with_seed(dir.path(), 3),
    );
    let (da, db, dc) = (digest(&a), digest(&b), digest(&c));
    assert!(da != db && db != dc && da != dc);
    let link = dir.path().join("current");
    flip(&link, &a);
    let broker = broker_with_topics(dir.path(), 3);
    let op = start(&broker, dir.path(), &link, "swap", &["--watch-model"]);
    op.wait_assigned(Duration::from_secs(60));
    let reloads_ok = "mmnet_model_reloads_total{result=\"ok\"}";

    // 8,000 records, and the first swap while they are being scored: SIGHUP after the link
    // moved to B (the watcher may see the flip first; either way exactly one swap).
    produce_rows(&broker, "telemetry", 8_000, 2);
    op.wait_scored(2_000.0, Duration::from_secs(120));
    flip(&link, &b);
    signal(&op.child, "HUP");
    wait_metric(&op, reloads_ok, 1.0, Duration::from_secs(30));
    // The second swap by the watcher alone: flip the link to C, no signal.
    produce_rows(&broker, "telemetry", 8_000, 2);
    op.wait_scored(12_000.0, Duration::from_secs(120));
    flip(&link, &c);
    wait_metric(&op, reloads_ok, 2.0, Duration::from_secs(30));
    produce_rows(&broker, "telemetry", 8_000, 2);
    let expected = broker.offsets("telemetry", 24_000);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(180), |r| {
        r.len() >= 24_000
    });
    let info_c = format!("mmnet_model_info{{name=\"mmnet\",digest=\"{dc}\"}}");
    assert_eq!(op.metric(&info_c), 1.0, "model_info must name C");
    assert_eq!(
        op.metric("mmnet_model_reloads_total{result=\"failed\"}"),
        0.0
    );
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    assert!(
        log.contains("Watch"),
        "the second swap is the watcher's:\n{log}"
    );
    assert_all_scored(&expected, &scores);
    assert_eq!(scores.len(), 24_000, "no duplicates in a clean run");
    // Per partition: A, then B, then C, each once, never back. Partitions that got no
    // records during one model's time show fewer runs, but always in that order.
    let order = [da.as_str(), db.as_str(), dc.as_str()];
    let runs = digest_runs(&scores);
    let mut seen_b = false;
    for (p, r) in &runs {
        let ranks: Vec<usize> = r
            .iter()
            .map(|(d, _)| order.iter().position(|o| o == d).unwrap())
            .collect();
        assert!(
            ranks.windows(2).all(|w| w[0] < w[1]),
            "partition {p}: digests {r:?} are not A, B, C in order"
        );
        assert_eq!(ranks.last(), Some(&2), "partition {p} ends on C: {r:?}");
        seen_b |= ranks.contains(&1);
    }
    assert!(seen_b, "B scored nothing: {runs:?}");
}

#[test]
fn a_corrupt_model_is_refused_and_the_old_one_keeps_serving() {
    let dir = workdir();
    let a = model_with_seed(dir.path(), 1);
    let b = model_with_seed(dir.path(), 2);
    let (da, db) = (digest(&a), digest(&b));
    // The operator serves a directory that is rewritten in place (no watcher: SIGHUP only).
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let copy_model = |from: &Path| {
        for f in ["manifest.json", "weights.safetensors"] {
            std::fs::copy(from.join(f), served.join(f)).unwrap();
        }
    };
    copy_model(&a);
    let broker = broker_with_topics(dir.path(), 2);
    let op = start(&broker, dir.path(), &served, "corrupt", &[]);
    op.wait_assigned(Duration::from_secs(60));
    produce_rows(&broker, "telemetry", 3_000, 1);
    op.wait_scored(3_000.0, Duration::from_secs(120));

    // B's manifest with truncated weights: the digest check refuses it.
    copy_model(&b);
    let w = served.join("weights.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    signal(&op.child, "HUP");
    wait_metric(
        &op,
        "mmnet_model_reloads_total{result=\"failed\"}",
        1.0,
        Duration::from_secs(30),
    );
    produce_rows(&broker, "telemetry", 3_000, 1);
    op.wait_scored(6_000.0, Duration::from_secs(120));
    let info = |d: &str| format!("mmnet_model_info{{name=\"mmnet\",digest=\"{d}\"}}");
    assert_eq!(op.metric(&info(&da)), 1.0, "still serving A");

    // The whole of B, then SIGHUP: swapped.
    copy_model(&b);
    signal(&op.child, "HUP");
    wait_metric(
        &op,
        "mmnet_model_reloads_total{result=\"ok\"}",
        1.0,
        Duration::from_secs(30),
    );
    produce_rows(&broker, "telemetry", 3_000, 1);
    let expected = broker.offsets("telemetry", 9_000);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(120), |r| {
        r.len() >= 9_000
    });
    assert_eq!(op.metric(&info(&db)), 1.0, "serving B");
    assert_eq!(op.metric(&info(&da)), 0.0, "A's series removed");
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    assert!(
        log.contains("model reload failed") && log.contains("SHA-256"),
        "the failure is logged with its cause:\n{log}"
    );
    assert_all_scored(&expected, &scores);
    let by_digest = |d: &str| {
        scores
            .iter()
            .filter(|r| r.json()["model"]["digest"] == d)
            .count()
    };
    assert_eq!(
        by_digest(&da),
        6_000,
        "everything before the good swap scored by A"
    );
    assert_eq!(by_digest(&db), 3_000);
}

#[test]
fn shadow_scores_every_record_like_offline_scoring() {
    let dir = workdir();
    let a = model_with_seed(dir.path(), 1);
    let b = model_with_seed(dir.path(), 2);
    let db = digest(&b);
    let broker = broker_with_topics(dir.path(), 2);
    let op = start(
        &broker,
        dir.path(),
        &a,
        "shadow",
        &["--shadow-model", b.to_str().unwrap()],
    );
    let n = 4_000;
    produce_rows(&broker, "telemetry", n, 1);
    let scores = read_until(&broker.addr, "scores", Duration::from_secs(120), |r| {
        r.len() >= n
    });
    wait_metric(
        &op,
        "mmnet_shadow_records_total",
        n as f64,
        Duration::from_secs(30),
    );
    let disagreements = op.metric("mmnet_shadow_disagreements_total");
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    assert_eq!(scores.len(), n);

    // Offline: both models over the same rows (the producer keys each row by its number).
    let offline = |model: &Path, name: &str| -> Vec<(f32, bool)> {
        let out = dir.path().join(format!("{name}.csv"));
        let data = spambase();
        ok(&[
            "score",
            "--model",
            model.to_str().unwrap(),
            "--input",
            data.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(out).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let si = header.iter().position(|h| *h == "mmnet_score").unwrap();
        let ai = header.iter().position(|h| *h == "is_anomaly").unwrap();
        lines
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[si].parse().unwrap(), f[ai] == "true")
            })
            .collect()
    };
    let (want_a, want_b) = (offline(&a, "a"), offline(&b, "b"));
    let close = |x: f32, y: f32| (x - y).abs() <= 1e-5 * y.abs().max(1.0);
    let mut differ = 0;
    for r in &scores {
        let v = r.json();
        let row: usize = v["key"].as_str().unwrap().parse().unwrap();
        let sh = &v["shadow"];
        assert_eq!(sh["digest"], db.as_str());
        let (sa, fa) = want_a[row];
        let (sb, fb) = want_b[row];
        assert!(
            close(v["mmnet_score"].as_f64().unwrap() as f32, sa),
            "row {row}: {v}"
        );
        assert!(
            close(sh["mmnet_score"].as_f64().unwrap() as f32, sb),
            "row {row}: {v}"
        );
        assert_eq!(sh["is_anomaly"].as_bool().unwrap(), fb, "row {row}");
        assert_eq!(v["is_anomaly"].as_bool().unwrap(), fa, "row {row}");
        differ += usize::from(fa != fb);
    }
    assert_eq!(disagreements, differ as f64);
}

fn produce_file(broker: &Broker, topic: &str, data: &Path) {
    ok(&[
        "produce",
        "--data",
        data.to_str().unwrap(),
        "--brokers",
        &broker.addr,
        "--topic",
        topic,
    ]);
}

#[test]
fn drift_metrics_stay_flat_on_training_traffic_and_move_on_a_shift() {
    let dir = workdir();
    // Trained on all of Spambase: D_u is its label-0 rows.
    let model = model_with_seed(dir.path(), 1);
    let feats = model_features(&model);
    let data = spambase();
    let table = format!("t={}", data.display());
    let sql = |select: &str, out: &Path| {
        ok(&[
            "sql",
            "--model",
            model.to_str().unwrap(),
            "--table",
            &table,
            "--output",
            out.to_str().unwrap(),
            select,
        ]);
    };
    // Exactly the unlabeled training rows, and the same rows shifted by a known amount
    // (every feature x 1.5 + 1: the maxima leave their training range, scores move up).
    let normal = dir.path().join("normal.parquet");
    sql("SELECT * FROM t WHERE label = 0", &normal);
    let shifted = dir.path().join("shifted.parquet");
    let cols: Vec<String> = feats
        .iter()
        .map(|f| format!("\"{f}\" * 1.5 + 1 AS \"{f}\""))
        .collect();
    sql(
        &format!("SELECT {} FROM t WHERE label = 0", cols.join(", ")),
        &shifted,
    );
    let config = dir.path().join("drift.toml");
    std::fs::write(&config, "[drift]\nwindow_rows = 2000\nmax_features = 5\n").unwrap();
    let broker = broker_with_topics(dir.path(), 2);
    let op = start(
        &broker,
        dir.path(),
        &model,
        "drift",
        &["--config", config.to_str().unwrap()],
    );
    op.wait_assigned(Duration::from_secs(60));
    produce_file(&broker, "telemetry", &normal);
    let n = 2_528.0; // Spambase's label-0 rows in data/spambase.parquet
    op.wait_scored(n, Duration::from_secs(120));
    let (psi0, flagged0) = (
        op.metric("mmnet_score_psi"),
        op.metric("mmnet_flagged_ratio"),
    );
    let oor0: f64 = http_get(&op.metrics, "/metrics")
        .lines()
        .filter(|l| l.starts_with("mmnet_out_of_range_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(psi0 < 0.05, "training traffic: PSI {psi0}");
    assert!(flagged0 < 0.03, "training traffic: flagged {flagged0}");
    assert_eq!(oor0, 0.0, "training rows are within their ranges");

    produce_file(&broker, "telemetry", &shifted);
    op.wait_scored(2.0 * n, Duration::from_secs(120));
    let (psi1, flagged1) = (
        op.metric("mmnet_score_psi"),
        op.metric("mmnet_flagged_ratio"),
    );
    let text = http_get(&op.metrics, "/metrics");
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("mmnet_out_of_range_total{"))
        .collect();
    let log = op.log();
    assert!(op.terminate(), "operator failed:\n{log}");
    eprintln!(
        "drift: PSI {psi0:.4} -> {psi1:.4}, flagged {flagged0:.4} -> {flagged1:.4}, {} out-of-range series",
        series.len()
    );
    assert!(psi1 > 0.25, "shifted traffic: PSI {psi1} (was {psi0})");
    assert!(flagged1 > flagged0, "flagged {flagged1} vs {flagged0}");
    assert!(!series.is_empty() && series.len() <= 6, "{series:?}");
}
