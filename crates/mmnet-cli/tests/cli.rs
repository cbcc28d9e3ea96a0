//! The `mmnet` binary end to end: the happy path over CSV, Parquet and NPZ, and every bad
//! input the engine issue lists, each with a clear message and a non-zero exit.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod cli_support;

use cli_support::{mmnet, ok, p};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command that must fail; returns its stderr, which must be one clear error.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = mmnet(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "mmnet {args:?} succeeded unexpectedly"
    );
    assert!(!err.contains("panicked"), "mmnet {args:?} panicked:\n{err}");
    for n in needles {
        assert!(
            err.contains(n),
            "mmnet {args:?}: stderr does not mention `{n}`:\n{err}"
        );
    }
    err
}

fn repo_data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A CSV with an id column, three features and a label; rows `anomalies` are labeled 1.
fn write_csv(
    dir: &Path,
    name: &str,
    rows: usize,
    label: impl Fn(usize) -> String,
    cell: impl Fn(usize, usize) -> String,
) -> PathBuf {
    let mut s = String::from("id,a,b,c,label\n");
    for i in 0..rows {
        writeln!(
            s,
            "{i},{},{},{},{}",
            cell(i, 0),
            cell(i, 1),
            cell(i, 2),
            label(i)
        )
        .unwrap();
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

fn value(i: usize, j: usize) -> String {
    let anomalous = i.is_multiple_of(20);
    let base = if anomalous { 5.0 } else { 1.0 };
    format!("{:.3}", base + ((i * 7 + j * 13) % 10) as f64 / 10.0)
}

/// `value` in every cell except (row, col), which holds `text`.
fn with_cell(row: usize, col: usize, text: &'static str) -> impl Fn(usize, usize) -> String {
    move |i, j| {
        if (i, j) == (row, col) {
            text.to_string()
        } else {
            value(i, j)
        }
    }
}

fn label(i: usize) -> String {
    if i.is_multiple_of(20) {
        "1".into()
    } else {
        "0".into()
    }
}

/// A CSV of `rows` rows and a model trained on it for `epochs` epochs (memory 8).
fn trained(dir: &Path, rows: usize, epochs: u32) -> (PathBuf, PathBuf) {
    let csv = write_csv(dir, "t.csv", rows, label, value);
    let model = dir.join("m");
    let epochs = epochs.to_string();
    ok(&[
        "train",
        "--data",
        p(&csv),
        "--exclude",
        "id",
        "--out",
        p(&model),
        "--epochs",
        &epochs,
        "--memory-size",
        "8",
        "--quiet",
    ]);
    (csv, model)
}

/// `mmnet train` on `csv` (excluding `id`) must fail with every one of `needles`.
fn train_fails(csv: &Path, needles: &[&str]) {
    fails(
        &[
            "train",
            "--data",
            p(csv),
            "--exclude",
            "id",
            "--out",
            "/tmp/never",
        ],
        needles,
    );
}

#[test]
fn train_score_eval_over_csv_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "t.csv", 300, label, value);
    let model = dir.path().join("model");
    let out = ok(&[
        "train",
        "--data",
        p(&csv),
        "--exclude",
        "id",
        "--out",
        p(&model),
        "--epochs",
        "3",
        "--memory-size",
        "8",
        "--quiet",
    ]);
    assert!(
        out.contains("trained on 285 unlabeled + 15 labeled rows, 3 features"),
        "{out}"
    );
    assert!(model.join("manifest.json").exists() && model.join("weights.safetensors").exists());

    // Score to CSV: every input column plus the four score columns, one row per input row.
    let scored = dir.path().join("scored.csv");
    let out = ok(&[
        "score",
        "--model",
        p(&model),
        "--input",
        p(&csv),
        "--output",
        p(&scored),
        "--quiet",
    ]);
    assert!(out.contains("scored 300 rows"), "{out}");
    let text = std::fs::read_to_string(&scored).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,a,b,c,label,mmnet_score,s_sum,s_kl,is_anomaly"
    );
    assert_eq!(lines.count(), 300);

    // Score to Parquet, then score that Parquet file's features again by name (column
    // order differs: the score columns come last and are ignored).
    let pq = dir.path().join("scored.parquet");
    ok(&[
        "score",
        "--model",
        p(&model),
        "--input",
        p(&csv),
        "--output",
        p(&pq),
        "--quiet",
    ]);
    let out = ok(&["eval", "--model", p(&model), "--data", p(&csv), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"], 300);
    // Every variant, then `selected` (the network's chosen variant) and `default` (with the
    // supervised term, on by default); the variant is one of the six fusions `--score auto`
    // chooses among.
    assert_eq!(v["metrics"].as_array().unwrap().len(), 12);
    assert_eq!(v["supervised_term"], true);
    let names: Vec<&str> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["variant"].as_str().unwrap())
        .collect();
    assert_eq!(names[10..], ["selected", "default"]);
    assert!(
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["variant"] == v["default_score"])
    );
    let fusions = [
        "mse",
        "mse_kl",
        "mse_half_logit",
        "mse_half_logit_kl",
        "mse_logit",
        "combined",
    ];
    assert!(
        fusions.contains(&v["default_score"].as_str().unwrap()),
        "{v}"
    );
    for m in v["metrics"].as_array().unwrap() {
        let auc = m["auc_roc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc));
    }
    // Threshold override: nothing is above +inf.
    let out = ok(&[
        "score",
        "--model",
        p(&model),
        "--input",
        p(&csv),
        "--output",
        p(&scored),
        "--threshold",
        "inf",
        "--quiet",
    ]);
    assert!(out.contains(": 0 anomalies"), "{out}");
}

#[test]
fn trains_from_shipped_npz_and_parquet() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["spambase.npz", "spambase.parquet"] {
        let model = dir.path().join(f);
        let out = ok(&[
            "train",
            "--data",
            &repo_data(f),
            "--out",
            p(&model),
            "--epochs",
            "1",
            "--quiet",
        ]);
        assert!(
            out.contains("2528 unlabeled + 1679 labeled rows, 57 features"),
            "{f}: {out}"
        );
    }
    let out = ok(&[
        "experiment",
        "--data",
        &repo_data("spambase.npz"),
        "--runs",
        "2",
        "--epochs",
        "2",
        "--memory-size",
        "32",
        "--quiet",
    ]);
    assert!(out.contains("run  1 seed   1"), "{out}");
    assert!(
        out.contains("paper") && out.contains("s_sum") && out.contains("mse"),
        "{out}"
    );
}

#[test]
fn missing_file() {
    fails(
        &[
            "train",
            "--data",
            "/nonexistent/x.csv",
            "--out",
            "/tmp/never",
        ],
        &["/nonexistent/x.csv", "No such file"],
    );
}

#[test]
fn unknown_extension() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("data.txt");
    std::fs::write(&f, "a,b\n1,2\n").unwrap();
    fails(
        &["train", "--data", p(&f), "--out", "/tmp/never"],
        &["data.txt", "unknown file type `txt`"],
    );
}

#[test]
fn missing_feature_column_at_scoring() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = trained(dir.path(), 100, 1);
    let other = dir.path().join("o.csv");
    std::fs::write(&other, "a,c\n1,2\n").unwrap();
    fails(
        &[
            "score",
            "--model",
            p(&model),
            "--input",
            p(&other),
            "--output",
            p(&dir.path().join("x.csv")),
        ],
        &["o.csv", "column `b` not found"],
    );
}

#[test]
fn non_numeric_feature_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "t.csv", 50, label, |i, j| {
        if j == 1 {
            format!("host{i}")
        } else {
            value(i, j)
        }
    });
    train_fails(&csv, &["column `b`", "not numeric", "--exclude b"]);
}

#[test]
fn nan_and_missing_values_in_training_data() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "t.csv", 50, label, with_cell(17, 2, "NaN"));
    train_fails(&csv, &["column `c`", "row 17", "not finite"]);
    let csv = write_csv(dir.path(), "u.csv", 50, label, with_cell(9, 0, "inf"));
    train_fails(&csv, &["column `a`", "row 9", "not finite"]);
    let csv = write_csv(dir.path(), "v.csv", 50, label, with_cell(4, 1, ""));
    train_fails(&csv, &["column `b`", "row 4", "null"]);
}

#[test]
fn label_values_other_than_zero_or_one() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(
        dir.path(),
        "t.csv",
        50,
        |i| if i == 33 { "2".into() } else { label(i) },
        value,
    );
    train_fails(&csv, &["column `label`", "row 33", "label 2 is not 0 or 1"]);
}

#[test]
fn no_labeled_anomalies() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "t.csv", 50, |_| "0".into(), value);
    train_fails(&csv, &["no labeled anomalies"]);
    let csv = write_csv(dir.path(), "u.csv", 50, label, value);
    fails(
        &[
            "train",
            "--data",
            p(&csv),
            "--exclude",
            "id",
            "--label-column",
            "is_attack",
            "--out",
            "/tmp/never",
        ],
        &["column `is_attack` not found"],
    );
}

#[test]
fn corrupted_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, model) = trained(dir.path(), 100, 1);
    let w = model.join("weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&w, bytes).unwrap();
    fails(
        &[
            "score",
            "--model",
            p(&model),
            "--input",
            p(&csv),
            "--output",
            p(&dir.path().join("x.csv")),
        ],
        &["weights.safetensors", "SHA-256", "corrupted"],
    );
    fails(
        &["eval", "--model", "/nonexistent/model", "--data", p(&csv)],
        &["no such model directory"],
    );
}

#[test]
fn bad_arguments() {
    fails(
        &[
            "train",
            "--data",
            "x.csv",
            "--out",
            "m",
            "--memory-size",
            "7",
        ],
        &["`memory_size`: must be an even number"],
    );
    fails(
        &["train", "--data", "x.csv", "--out", "m", "--score", "best"],
        &["unknown score `best`"],
    );
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "t.csv", 50, label, value);
    fails(
        &[
            "score",
            "--model",
            "m",
            "--input",
            p(&csv),
            "--output",
            "out.json",
        ],
        &[],
    );
}

#[test]
fn sql_over_tables_one_shot_output_and_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, model) = trained(dir.path(), 200, 2);
    let table = format!("readings={}", p(&csv));
    // One-shot query printing a table; ORDER BY the score returns the highest rows.
    let out = ok(&[
        "sql",
        "--model",
        p(&model),
        "--table",
        &table,
        "SELECT id, mmnet_score(*) AS s FROM readings ORDER BY mmnet_score(*) DESC LIMIT 3",
    ]);
    assert!(out.contains("| id") && out.contains("3 row(s)"), "{out}");
    // The same ranking as `mmnet score --top`.
    let scored = dir.path().join("s.csv");
    let top = ok(&[
        "score",
        "--model",
        p(&model),
        "--input",
        p(&csv),
        "--output",
        p(&scored),
        "--top",
        "1",
        "--quiet",
    ]);
    let best_row: String = top
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let first_data_line = out.lines().nth(3).unwrap();
    assert!(
        first_data_line.contains(&format!("| {best_row} ")),
        "sql top row `{first_data_line}` vs score --top row {best_row}"
    );
    // Result to Parquet, read back by another query; two models under their own names.
    let pq = dir.path().join("q.parquet");
    let named = format!("other={}", p(&model));
    let out = ok(&[
        "sql",
        "--model",
        p(&model),
        "--model",
        &named,
        "--table",
        &table,
        "--output",
        p(&pq),
        "SELECT id, mmnet_score(*) AS s, other_s_sum(*) AS t FROM readings",
    ]);
    assert!(out.contains("200 rows written"), "{out}");
    let back = format!("q={}", p(&pq));
    let out = ok(&[
        "sql",
        "--model",
        p(&model),
        "--table",
        &back,
        "SELECT count(*) AS n FROM q WHERE t >= 0 AND t <= 1",
    ]);
    assert!(out.contains("| 200 |"), "{out}");
    // Interactive prompt fed from stdin: multi-line statement, an error that does not end
    // the session, then quit.
    let mut child = Command::new(cli_support::bin())
        .args(["sql", "--model", p(&model), "--table", &table])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*)\n  FROM readings;\nSELEC 1;\nSELECT 41 + 1 AS answer;\n\\q\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        stdout.contains("| 200 ") && stdout.contains("| 42 "),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("SELEC"));
}

#[test]
fn sql_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = trained(dir.path(), 100, 1);
    let other = dir.path().join("o.csv");
    std::fs::write(&other, "a,c\n1,2\n").unwrap();
    let t = format!("readings={}", p(&other));
    fails(
        &[
            "sql",
            "--model",
            p(&model),
            "--table",
            &t,
            "SELECT mmnet_score(*) FROM readings",
        ],
        &["feature `b` is not a column of the input"],
    );
    fails(
        &[
            "sql",
            "--model",
            p(&model),
            "--table",
            "readings=/nonexistent.parquet",
            "SELECT 1",
        ],
        &["/nonexistent.parquet"],
    );
    fails(
        &[
            "sql",
            "--model",
            p(&model),
            "--table",
            "nonsense",
            "SELECT 1",
        ],
        &["must be NAME=FILE"],
    );
}

#[test]
fn report_writes_plots_and_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, model) = trained(dir.path(), 400, 5);
    let out = dir.path().join("report");
    let text = ok(&[
        "report",
        "--model",
        p(&model),
        "--data",
        p(&csv),
        "--out",
        p(&out),
    ]);
    assert!(text.contains("index.html"), "{text}");
    for png in ["roc.png", "pr.png", "scores.png", "loss.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        // A real PNG of a real size, not an empty file.
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{png}");
        assert!(bytes.len() > 10_000, "{png}: {} bytes", bytes.len());
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for needle in [
        "roc.png",
        "pr.png",
        "scores.png",
        "loss.png",
        "AUC-ROC",
        "combined",
    ] {
        assert!(html.contains(needle), "index.html lacks {needle}");
    }
    // Without both classes there is nothing to plot: a clear error.
    let one_class = write_csv(dir.path(), "normal.csv", 50, |_| "0".into(), value);
    fails(
        &[
            "report",
            "--model",
            p(&model),
            "--data",
            p(&one_class),
            "--out",
            p(&out),
        ],
        &["normal.csv", "both normal (0) and anomalous (1)"],
    );
}

#[test]
fn explain_one_row_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, model) = trained(dir.path(), 200, 3);
    let text = ok(&[
        "explain",
        "--model",
        p(&model),
        "--input",
        p(&csv),
        "--row",
        "20",
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("manifest.json")).unwrap())
            .unwrap();
    // The header names the variant and, when the model carries one, the supervised term.
    let variant = manifest["score"]["variant"].as_str().unwrap();
    let chosen = if manifest["score"]["supervised"].is_object() {
        format!("mmnet_score ({variant} + supervised)")
    } else {
        format!("mmnet_score ({variant})")
    };
    for needle in [chosen.as_str(), "most attended memory items", "share"] {
        assert!(text.contains(needle), "{text}");
    }
    let json = ok(&[
        "explain",
        "--model",
        p(&model),
        "--input",
        p(&csv),
        "--row",
        "20",
        "--json",
        "--top-memory",
        "3",
        "--top-features",
        "2",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let e = &v["explanation"];
    assert_eq!(e["memory"].as_array().unwrap().len(), 3);
    assert_eq!(e["features"].as_array().unwrap().len(), 2);
    assert!(e["memory"][0]["part"] == "normal" || e["memory"][0]["part"] == "anomaly");
    // The scorer and the explanation agree on the row's score.
    let scored = dir.path().join("s.csv");
    ok(&[
        "score",
        "--model",
        p(&model),
        "--input",
        p(&csv),
        "--output",
        p(&scored),
    ]);
    let rows = std::fs::read_to_string(&scored).unwrap();
    let header: Vec<&str> = rows.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "mmnet_score").unwrap();
    let row20: f64 = rows
        .lines()
        .nth(21)
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .parse()
        .unwrap();
    assert!((e["mmnet_score"].as_f64().unwrap() - row20).abs() < 1e-5);
    // A row past the end names the file and the row count.
    fails(
        &[
            "explain",
            "--model",
            p(&model),
            "--input",
            p(&csv),
            "--row",
            "200",
        ],
        &["t.csv", "row 200 does not exist", "200 rows"],
    );
}

/// A CSV with three features, a label and an anomaly-type column: 400 normal rows (type 0),
/// 50 anomalies of each of types 1 to 3 (each off in its own feature) and 10 of type 4.
fn write_typed_csv(dir: &Path) -> PathBuf {
    let mut s = String::from("a,b,c,label,kind\n");
    let mut row = 0usize;
    let mut push = |s: &mut String, kind: usize| {
        let mut v = [0.0f64; 3];
        for (j, x) in v.iter_mut().enumerate() {
            *x = 1.0 + ((row * 7 + j * 13) % 17) as f64 / 17.0;
        }
        if (1..=3).contains(&kind) {
            v[kind - 1] += 4.0;
        } else if kind == 4 {
            v = [6.0, 6.0, 6.0];
        }
        writeln!(s, "{},{},{},{},{kind}", v[0], v[1], v[2], (kind > 0) as u8).unwrap();
        row += 1;
    };
    for _ in 0..400 {
        push(&mut s, 0);
    }
    for kind in 1..=3 {
        for _ in 0..50 {
            push(&mut s, kind);
        }
    }
    for _ in 0..10 {
        push(&mut s, 4);
    }
    let p = dir.join("typed.csv");
    std::fs::write(&p, s).unwrap();
    p
}

/// Types of the per-type entries of one experiment document.
fn reported_types(doc: &serde_json::Value) -> Vec<i64> {
    doc["report"]["per_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["anomaly_type"].as_i64().unwrap())
        .collect()
}

#[test]
fn experiment_reports_unseen_types_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_typed_csv(dir.path());
    let json = dir.path().join("e.json");
    let base = [
        "experiment",
        "--data",
        p(&data),
        "--type-column",
        "kind",
        "--runs",
        "1",
        "--epochs",
        "2",
        "--memory-size",
        "8",
        "--quiet",
        "--json",
        p(&json),
    ];
    // Each listed type known in turn: one document per setting, the known type never among
    // the reported (unseen) ones.
    let out = ok(&[&base[..], &["--known-type", "1,2"]].concat());
    assert!(
        out.contains("known anomaly type 1 (the test set holds the other types)"),
        "{out}"
    );
    assert!(out.contains("known anomaly type 2"), "{out}");
    assert!(out.contains("AUC-ROC per test anomaly type"), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let exps = doc["experiments"].as_array().unwrap();
    assert_eq!(exps.len(), 2);
    assert_eq!(exps[0]["known_type"], 1);
    assert_eq!(reported_types(&exps[0]), vec![2, 3, 4]);
    assert_eq!(reported_types(&exps[1]), vec![1, 3, 4]);
    // Every variant and `default` is evaluated per type.
    let v = &exps[0]["report"]["per_type"][0]["variants"];
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|s| s["variant"] == "default")
    );

    // Two types known together: one setting, only the other types tested.
    ok(&[&base[..], &["--known-types", "1,3"]].concat());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["known_types"], serde_json::json!([1, 3]));
    assert_eq!(reported_types(&doc), vec![2, 4]);

    // `all`: every type with enough anomalies for the protocol; type 4 (8 training
    // anomalies for 30 labeled) is skipped with a note.
    let out = ok(&[&base[..], &["--known-type", "all"]].concat());
    assert!(
        out.contains("skipping known type 4: 8 training anomalies, fewer than --labeled 30"),
        "{out}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["experiments"].as_array().unwrap().len(), 3);

    // The type column alone: the usual protocol, AUCs per type of every anomaly.
    ok(&base);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(reported_types(&doc), vec![1, 2, 3, 4]);

    // Bad settings: clear errors naming the column and the value.
    fails(
        &[&base[..], &["--known-type", "7"]].concat(),
        &["no anomaly has `kind` = 7", "[1, 2, 3, 4]"],
    );
    fails(
        &[&base[..], &["--known-type", "dos"]].concat(),
        &["`dos` is neither an integer type nor `all`"],
    );
    fails(
        &[&base[..], &["--known-type", "4"]].concat(),
        &["fewer than the 30 labeled anomalies"],
    );
}

#[test]
fn warm_start_from_a_model_records_its_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, parent) = trained(dir.path(), 300, 2);
    let child = dir.path().join("child");
    let out = ok(&[
        "train",
        "--data",
        p(&csv),
        "--init-from",
        p(&parent),
        "--grow-anomaly-memory",
        "2",
        "--epochs",
        "1",
        "--out",
        p(&child),
        "--quiet",
    ]);
    assert!(
        out.contains("warm-started from") && out.contains("2 anomaly-memory items added"),
        "{out}"
    );
    let read = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap()
    };
    let (pm, cm) = (read(&parent), read(&child));
    let lineage = &cm["training"]["lineage"];
    assert_eq!(lineage["parent_digest"], pm["weights"]["sha256"]);
    assert_eq!(lineage["epochs"], 1);
    assert_eq!(lineage["grown_anomaly_memory"], 2);
    assert_eq!(
        cm["model"]["memory_anomaly"].as_u64().unwrap(),
        pm["model"]["memory_anomaly"].as_u64().unwrap() + 2
    );
    assert_eq!(cm["scaler"], pm["scaler"], "the parent's scaling is kept");
    // And its score, without a validation probe, unless --score says otherwise.
    assert_eq!(cm["score"]["variant"], pm["score"]["variant"]);
    assert!(cm["score"].get("selection").is_none(), "{}", cm["score"]);
    // Data without one of the parent's features is refused, naming it.
    let other = write_csv(dir.path(), "other.csv", 50, label, value);
    let text = std::fs::read_to_string(&other)
        .unwrap()
        .replacen(",b,", ",bb,", 1);
    std::fs::write(&other, text).unwrap();
    fails(
        &[
            "train",
            "--data",
            p(&other),
            "--init-from",
            p(&parent),
            "--out",
            p(&dir.path().join("x")),
        ],
        &["`b`"],
    );
    fails(
        &[
            "train",
            "--data",
            p(&csv),
            "--grow-anomaly-memory",
            "2",
            "--out",
            "x",
        ],
        &["--init-from"],
    );
}

#[test]
fn sql_prompt_reloads_models_from_their_paths() {
    use std::io::{BufRead as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let (csv, a) = trained(dir.path(), 200, 1);
    let b = dir.path().join("b");
    ok(&[
        "train",
        "--data",
        p(&csv),
        "--exclude",
        "id",
        "--out",
        p(&b),
        "--epochs",
        "1",
        "--memory-size",
        "8",
        "--seed",
        "9",
        "--quiet",
    ]);
    let link = dir.path().join("current");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let table = format!("readings={}", p(&csv));
    let mut child = Command::new(cli_support::bin())
        .args(["sql", "--model", p(&link), "--table", &table])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Sends `input` and returns stdout up to the first line containing `until`.
    let mut ask = |input: &str, until: &str| -> String {
        stdin.write_all(input.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut got = String::new();
        for l in lines.by_ref() {
            let l = l.unwrap();
            got.push_str(&l);
            got.push('\n');
            if l.contains(until) {
                return got;
            }
        }
        panic!("no `{until}` in:\n{got}");
    };
    let query = "SELECT round(sum(mmnet_score(*)), 3) AS total FROM readings;\n";
    let before = ask(query, "row(s)");
    // Flip the link to B: `\reload` follows it, and queries from then on use B.
    let tmp = dir.path().join("tmp");
    std::os::unix::fs::symlink(&b, &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    let reloaded = ask("\\reload\n", "model mmnet");
    assert!(reloaded.contains(" -> "), "{reloaded}");
    let after = ask(query, "row(s)");
    assert_ne!(before, after, "the reloaded model scores differently");
    // A missing model: reported, the one in use stays.
    std::fs::remove_file(&link).unwrap();
    let same = ask(&format!("\\reload\n{query}"), "row(s)");
    let strip = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with('|'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&same), strip(&after));
    drop(stdin); // end of input: the prompt exits
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("reload failed, keeping the old one"), "{err}");
}

/// The Parquet file AFL++ found makes the parquet crate reserve 6.9 GB from a 1,380-byte
/// footer; in a process with a memory limit that reservation aborted mmnet (exit 134, no
/// message). The footer is now checked first: the same limit gives a clear error, exit 1.
/// Checked through `train` and through `sql`, whose tables DataFusion opens.
#[test]
fn a_hostile_parquet_footer_is_an_error_under_a_memory_limit() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/parquet_table/afl-schema-num-children-6.9GB-reserve.parquet");
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path(), 200, 2).1;
    let bin = env!("CARGO_BIN_EXE_mmnet");
    let limited = |args: String| {
        // 1.5 GB of address space: far above what mmnet needs here, far below 6.9 GB.
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v 1500000 && exec {bin} {args}"))
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let table = format!("t={}", p(&file));
    for args in [
        format!(
            "train --data {} --out {}",
            p(&file),
            p(&dir.path().join("m2"))
        ),
        format!(
            "sql --model {} --table {table} \"SELECT count(*) FROM t\"",
            p(&model)
        ),
    ] {
        let o = limited(args.clone());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args}: {err}");
        assert!(
            err.contains("malformed Parquet footer: schema element"),
            "{args}: {err}"
        );
        assert!(
            err.contains("afl-schema-num-children"),
            "names the file: {err}"
        );
    }
}

/// The `mmnet_score` column of a scored CSV.
fn score_column(path: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == "mmnet_score").unwrap();
    lines
        .map(|l| l.split(',').nth(at).unwrap().parse().unwrap())
        .collect()
}

/// `--precision bf16` at scoring time, or stored by `train --precision bf16`: scores close
/// to f32 but not equal to them, the same through `score` and `sql`; a bad value is named.
#[test]
fn bf16_precision_from_the_flag_or_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, model) = trained(dir.path(), 300, 3);
    let run = |model: &Path, extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let mut args = vec!["score", "--model", p(model), "--input", p(&csv)];
        args.extend(["--output", p(&out), "--quiet"]);
        args.extend(extra);
        ok(&args);
        score_column(&out)
    };
    let f32s = run(&model, &[], "f32.csv");
    let bf16 = run(&model, &["--precision", "bf16"], "bf16.csv");
    assert_eq!(f32s.len(), 300);
    assert_ne!(f32s, bf16, "bf16 rounds: not the f32 path");
    for (a, b) in f32s.iter().zip(&bf16) {
        assert!((a - b).abs() <= 0.05 * a.abs().max(1.0), "{a} vs {b}");
    }
    // Stored in the manifest by `train --precision bf16`: the same scores without a flag,
    // and `--precision f32` overrides it back to the f32 numbers.
    let stored = dir.path().join("m16");
    ok(&[
        "train",
        "--data",
        p(&csv),
        "--exclude",
        "id",
        "--out",
        p(&stored),
        "--epochs",
        "3",
        "--memory-size",
        "8",
        "--quiet",
        "--precision",
        "bf16",
    ]);
    let manifest = std::fs::read_to_string(stored.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"precision\": \"bf16\""), "{manifest}");
    assert_eq!(run(&stored, &[], "s16.csv"), bf16);
    assert_eq!(run(&stored, &["--precision", "f32"], "s32.csv"), f32s);
    // SQL with the flag gives the same numbers as `score` with it.
    let sql_out = dir.path().join("sql.csv");
    let table = format!("t={}", p(&csv));
    ok(&[
        "sql",
        "--model",
        p(&model),
        "--table",
        &table,
        "--precision",
        "bf16",
        "--output",
        p(&sql_out),
        "SELECT id, mmnet_score(*) AS mmnet_score FROM t ORDER BY id",
    ]);
    let sql = score_column(&sql_out);
    for (a, b) in sql.iter().zip(&bf16) {
        assert!(
            (a - b).abs() <= 1e-6 * a.abs().max(1.0),
            "sql {a} vs score {b}"
        );
    }
    fails(
        &[
            "score",
            "--model",
            p(&model),
            "--input",
            p(&csv),
            "--output",
            "/tmp/x.csv",
            "--precision",
            "fp8",
        ],
        &["`fp8` is not a precision", "f32 or bf16"],
    );
}
