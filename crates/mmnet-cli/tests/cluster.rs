//! Scaling out: `mmnet sql --cluster` (a Ballista scheduler and two executors started as
//! separate `mmnet` processes on 127.0.0.1) against local `mmnet sql` on the same files, and
//! `s3://` tables (moto's S3 server) against the same files read locally.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod cli_support;
mod s3_support;

use cli_support::{bin, mmnet, mmnet_env, ok, ok_env, p};

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process of the cluster, killed when dropped; its stderr goes to `log`.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(args: &[String], log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .args(args)
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (or the process exits, or 60 s pass).
    fn wait_for(&mut self, needle: &str) {
        let start = Instant::now();
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("process exited ({st}) before `{needle}`:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no `{needle}` after 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16, what: &Proc) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing listens on {port}:\n{}",
            what.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `mmnet cluster ROLE --model MODEL EXTRA...`, logging into `dir/LOG`.
fn cluster_proc(dir: &Path, role: &str, model: &Path, extra: &[String], log: &str) -> Proc {
    let mut args: Vec<String> = vec!["cluster".into(), role.into(), "--model".into()];
    args.push(p(model).into());
    args.extend_from_slice(extra);
    Proc::start(&args, dir.join(log))
}

/// A scheduler for `model`, on a free port.
fn scheduler(dir: &Path, model: &Path) -> (Proc, u16) {
    let port = free_port();
    let bind = vec!["--bind".into(), format!("127.0.0.1:{port}")];
    let mut s = cluster_proc(
        dir,
        "scheduler",
        model,
        &bind,
        &format!("scheduler-{port}.log"),
    );
    wait_listening(port, &s);
    s.wait_for("listening");
    (s, port)
}

/// An executor for `model` registered with the scheduler at `sport`.
fn executor(dir: &Path, model: &Path, sport: u16, name: &str) -> Proc {
    let (grpc, flight) = (free_port(), free_port());
    let work = dir.join(format!("work-{name}"));
    let extra = [
        "--scheduler".into(),
        format!("127.0.0.1:{sport}"),
        "--bind".into(),
        format!("127.0.0.1:{grpc}"),
        "--flight-port".into(),
        flight.to_string(),
        "--work-dir".into(),
        p(&work).into(),
        "--concurrency".into(),
        "2".into(),
    ];
    let mut e = cluster_proc(
        dir,
        "executor",
        model,
        &extra,
        &format!("executor-{name}.log"),
    );
    e.wait_for("registration succeed");
    e
}

/// 2,000 rows of id, a, b, c, label as CSV; every 20th row anomalous.
fn write_csv(dir: &Path) -> PathBuf {
    let mut s = String::from("id,a,b,c,label\n");
    for i in 0..2000usize {
        let anomalous = i.is_multiple_of(20);
        let base = if anomalous { 5.0 } else { 1.0 };
        let v = |j: usize| base + ((i * 7 + j * 13) % 17) as f64 * 0.1;
        writeln!(s, "{i},{},{},{},{}", v(0), v(1), v(2), u8::from(anomalous)).unwrap();
    }
    let path = dir.join("t.csv");
    std::fs::write(&path, s).unwrap();
    path
}

fn train(dir: &Path, csv: &Path, name: &str, seed: &str) -> PathBuf {
    train_from(dir, p(csv), name, seed, "id", &[])
}

/// A model trained on the table at `location` (a file, directory or URL).
fn train_from(
    dir: &Path,
    location: &str,
    name: &str,
    seed: &str,
    exclude: &str,
    env: &[(String, String)],
) -> PathBuf {
    let model = dir.join(name);
    ok_env(
        &[
            "train",
            "--data",
            location,
            "--exclude",
            exclude,
            "--out",
            p(&model),
            "--epochs",
            "2",
            "--memory-size",
            "8",
            "--ensemble",
            "1",
            "--seed",
            seed,
            "--quiet",
        ],
        env,
    );
    model
}

fn digest(model: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("manifest.json")).unwrap())
            .unwrap();
    v["weights"]["sha256"].as_str().unwrap().to_string()
}

/// The CSV split into four Parquet files under hive-style partitions of a directory.
fn parquet_dir(dir: &Path, csv: &Path, model: &Path) -> PathBuf {
    let root = dir.join("readings");
    for k in 0..4 {
        let part = root.join(format!("shard={k}"));
        std::fs::create_dir_all(&part).unwrap();
        let out = part.join("part.parquet");
        ok(&[
            "sql",
            "--model",
            p(model),
            "--table",
            &format!("t={}", p(csv)),
            "--output",
            p(&out),
            &format!("SELECT id, a, b, c, label FROM t WHERE id % 4 = {k}"),
        ]);
    }
    root
}

/// id -> (score, flag) from a CSV written by `mmnet sql --output`.
fn read_scores(path: &Path) -> HashMap<i64, (f64, bool)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows = HashMap::new();
    for line in text.lines().skip(1) {
        // Executors' CSV writer quotes every field (the quote style does not survive
        // Ballista's plan serialisation); the values are the same.
        let f: Vec<&str> = line.split(',').map(|v| v.trim_matches('"')).collect();
        let id: i64 = f[0].parse().unwrap();
        let prev = rows.insert(id, (f[1].parse().unwrap(), f[2] == "true"));
        assert!(prev.is_none(), "id {id} twice in {}", path.display());
    }
    rows
}

/// id -> [mmnet_score, s_sum, s_kl, is_anomaly (0/1)] from a CSV written by `mmnet score`,
/// columns found by name.
fn score_columns(path: &Path) -> HashMap<i64, [f64; 4]> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|h| h.trim_matches('"').to_string())
        .collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let idx = [
        col("id"),
        col("mmnet_score"),
        col("s_sum"),
        col("s_kl"),
        col("is_anomaly"),
    ];
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(|v| v.trim_matches('"')).collect();
            let v = |k: usize| -> f64 {
                match f[idx[k]] {
                    "true" => 1.0,
                    "false" => 0.0,
                    x => x.parse().unwrap(),
                }
            };
            (f[idx[0]].parse().unwrap(), [v(1), v(2), v(3), v(4)])
        })
        .collect()
}

const QUERY: &str = "SELECT id, mmnet_score(*) AS s, mmnet_is_anomaly(*) AS flagged FROM readings";

#[test]
fn the_cluster_scores_every_row_once_like_local_sql() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path());
    let model = train(dir.path(), &csv, "m", "7");
    let table = parquet_dir(dir.path(), &csv, &model);
    let table_arg = format!("readings={}", p(&table));

    let local = dir.path().join("local.csv");
    ok(&[
        "sql",
        "--model",
        p(&model),
        "--table",
        &table_arg,
        "--output",
        p(&local),
        QUERY,
    ]);

    let (_s, sport) = scheduler(dir.path(), &model);
    let mut e1 = executor(dir.path(), &model, sport, "1");
    let mut e2 = executor(dir.path(), &model, sport, "2");
    let url = format!("df://127.0.0.1:{sport}");
    let remote = dir.path().join("cluster.csv");
    let out = ok(&[
        "sql",
        "--cluster",
        &url,
        "--model",
        p(&model),
        "--table",
        &table_arg,
        "--output",
        p(&remote),
        QUERY,
    ]);
    assert!(out.contains("2000 rows written"), "{out}");

    let (a, b) = (read_scores(&local), read_scores(&remote));
    assert_eq!(a.len(), 2000);
    assert_eq!(b.len(), 2000, "every row exactly once through the cluster");
    for (id, (s, f)) in &a {
        let (s2, f2) = b[id];
        assert!((s - s2).abs() <= 1e-6, "id {id}: local {s}, cluster {s2}");
        assert_eq!(*f, f2, "id {id}");
    }
    // Printing works too, and both executors ran tasks.
    let shown = ok(&[
        "sql",
        "--cluster",
        &url,
        "--model",
        p(&model),
        "--table",
        &table_arg,
        "SELECT count(*) AS n, sum(CAST(mmnet_is_anomaly(*) AS INT)) AS flagged FROM readings",
    ]);
    assert!(shown.contains("| 2000"), "{shown}");
    // `mmnet score --cluster` writes the four columns of the local file scorer, equal to it.
    let by_cluster = dir.path().join("scored-cluster.csv");
    let by_file = dir.path().join("scored-file.csv");
    ok(&[
        "score",
        "--cluster",
        &url,
        "--model",
        p(&model),
        "--input",
        p(&table),
        "--output",
        p(&by_cluster),
    ]);
    ok(&[
        "score",
        "--model",
        p(&model),
        "--input",
        p(&csv),
        "--output",
        p(&by_file),
        "--quiet",
    ]);
    let (c, f) = (score_columns(&by_cluster), score_columns(&by_file));
    assert_eq!(c.len(), 2000);
    for (id, want) in &f {
        let got = &c[id];
        for k in 0..3 {
            assert!(
                (got[k] - want[k]).abs() <= 1e-6,
                "id {id} column {k}: {got:?} vs {want:?}"
            );
        }
        assert_eq!(got[3], want[3], "id {id} is_anomaly");
    }
    e1.wait_for("Execute task");
    e2.wait_for("Execute task");
    for e in [&e1, &e2] {
        let log = e.log();
        assert!(
            log.contains("Received task") || log.contains("Execute task"),
            "an executor ran no task:\n{log}"
        );
    }
}

#[test]
fn an_executor_with_another_model_is_refused_and_npz_tables_too() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path());
    let model = train(dir.path(), &csv, "m", "7");
    let other = train(dir.path(), &csv, "other", "8");
    let table = parquet_dir(dir.path(), &csv, &model);
    let table_arg = format!("readings={}", p(&table));
    let (dm, dother) = (digest(&model), digest(&other));
    assert_ne!(dm, dother);

    let (_s, sport) = scheduler(dir.path(), &model);
    let _e = executor(dir.path(), &other, sport, "other");
    let url = format!("df://127.0.0.1:{sport}");
    let out = mmnet(&[
        "sql",
        "--cluster",
        &url,
        "--model",
        p(&model),
        "--table",
        &table_arg,
        QUERY,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a mixed-version query ran:\n{err}");
    assert!(err.contains("model digest mismatch"), "{err}");
    assert!(err.contains(&dm) && err.contains(&dother), "{err}");

    // An NPZ table cannot be scanned by executors: refused before anything runs.
    let npz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/spambase.npz");
    let out = mmnet(&[
        "sql",
        "--cluster",
        &url,
        "--model",
        p(&model),
        "--table",
        &format!("s={}", p(&npz)),
        "SELECT 1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("NPZ tables") && err.contains("convert it to Parquet"),
        "{err}"
    );

    // A client address that is not df:// is refused by name.
    let out = mmnet(&[
        "sql",
        "--cluster",
        "http://127.0.0.1:1",
        "--model",
        p(&model),
        "SELECT 1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("expected df://HOST:PORT"), "{err}");
}

/// Train from and score a partitioned Parquet directory under `s3://` (uploaded by
/// `mmnet sql --output s3://...`), scores written back to `s3://`: the same model and the
/// same scores as from the local copy of the files.
#[test]
fn train_and_score_a_partitioned_directory_in_s3_like_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path());
    let seed_model = train(dir.path(), &csv, "seed-model", "7");
    let local = parquet_dir(dir.path(), &csv, &seed_model);
    let s3 = s3_support::S3::start(dir.path(), "telemetry");
    let env = s3.env();
    for k in 0..4 {
        let file = local.join(format!("shard={k}/part.parquet"));
        let out = ok_env(
            &[
                "sql",
                "--model",
                p(&seed_model),
                "--table",
                &format!("t={}", p(&file)),
                "--output",
                &format!("s3://telemetry/readings/shard={k}/part.parquet"),
                "SELECT * FROM t",
            ],
            &env,
        );
        assert!(out.contains("500 rows written"), "{out}");
    }

    // The same rows train the same model, from either place.
    let from_s3 = train_from(
        dir.path(),
        "s3://telemetry/readings/",
        "m-s3",
        "3",
        "id,shard",
        &env,
    );
    let from_local = train_from(dir.path(), p(&local), "m-local", "3", "id,shard", &[]);
    assert_eq!(digest(&from_s3), digest(&from_local));

    // Score from s3 into s3, read it back; score the local copy locally.
    let out = ok_env(
        &[
            "score",
            "--model",
            p(&from_s3),
            "--input",
            "s3://telemetry/readings/",
            "--output",
            "s3://telemetry/scored/all.parquet",
        ],
        &env,
    );
    assert!(out.contains("2000 rows written"), "{out}");
    let back = dir.path().join("back.csv");
    ok_env(
        &[
            "sql",
            "--model",
            p(&from_s3),
            "--table",
            "o=s3://telemetry/scored/all.parquet",
            "--output",
            p(&back),
            "SELECT id, mmnet_score, is_anomaly, shard FROM o",
        ],
        &env,
    );
    let local_scored = dir.path().join("local.parquet");
    ok(&[
        "score",
        "--model",
        p(&from_local),
        "--input",
        p(&local),
        "--output",
        p(&local_scored),
    ]);
    let local_csv = dir.path().join("local.csv");
    ok(&[
        "sql",
        "--model",
        p(&from_local),
        "--table",
        &format!("o={}", p(&local_scored)),
        "--output",
        p(&local_csv),
        "SELECT id, mmnet_score, is_anomaly FROM o",
    ]);
    let (a, b) = (read_scores(&local_csv), read_scores(&back));
    assert_eq!(a.len(), 2000);
    assert_eq!(a, b, "scores from s3 differ from the local files'");
    // The partition column came along from the path.
    let text = std::fs::read_to_string(&back).unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let id: u64 = f[0].parse().unwrap();
        assert_eq!(f[3], (id % 4).to_string(), "{line}");
    }

    // Bad settings and places are clear errors.
    let err = mmnet_env(
        &[
            "sql",
            "--model",
            p(&from_s3),
            "--table",
            "o=s3://telemetry/nothing-here/",
            "--storage-option",
            "colour=blue",
            "SELECT 1",
        ],
        &env,
    );
    let e = String::from_utf8_lossy(&err.stderr);
    assert!(
        !err.status.success() && e.contains("unknown key `colour`"),
        "{e}"
    );
    let err = mmnet_env(
        &[
            "train",
            "--data",
            "s3://telemetry/nothing-here/",
            "--out",
            "/tmp/never",
        ],
        &env,
    );
    let e = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success() && e.contains("nothing-here"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}
