//! `mmnet experiment`: the paper's protocol (SPEC) end to end.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mmnet_arrow::{DatasetSpec, load_dataset};
use mmnet_core::experiment::{ExperimentDoc, anomaly_types};
use mmnet_core::protocol::{KnownType, ProtocolConfig};

use crate::cmd_train::ModelOpts;
use crate::progress::TrainBar;

/// Arguments of `mmnet experiment`.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Labeled table: .parquet, .csv or .npz.
    #[arg(long)]
    pub data: PathBuf,
    /// Column with the true labels (1 = anomaly).
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Columns that are neither features nor label, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Repetitions (each with its own split, draws and initialisation).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Seed of the first run; run r uses seed + r.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Labeled anomalies in D_l.
    #[arg(long, default_value_t = 30)]
    pub labeled: usize,
    /// Share of anomalies in D_u.
    #[arg(long, default_value_t = 0.02)]
    pub contamination: f64,
    /// Column with the anomaly type (integers): test AUCs are also reported per type, and
    /// --known-type / --known-types run the known/unknown-type protocol on it.
    #[arg(long)]
    pub type_column: Option<String>,
    /// Known/unknown-type protocol, each listed type known in turn (`3`, `3,4,6`, or `all`
    /// for every anomaly type): its anomalies fill D_l and the contamination of D_u, and the
    /// test set holds the normals and the *other* types only, reported type by type.
    #[arg(
        long,
        requires = "type_column",
        value_delimiter = ',',
        conflicts_with = "known_types"
    )]
    pub known_type: Vec<String>,
    /// Known/unknown-type protocol with several types known together (`--known-types 3,4`):
    /// one setting whose training anomalies are of any listed type.
    #[arg(long, requires = "type_column", value_delimiter = ',')]
    pub known_types: Vec<i64>,
    /// Write each run's D_u, D_l and test set (raw features + labels, Parquet) under
    /// DIR/run<N>/, for running other detectors on identical splits.
    #[arg(long)]
    pub export_splits: Option<PathBuf>,
    /// With --export-splits: write the splits and stop, without training.
    #[arg(long, requires = "export_splits")]
    pub export_only: bool,
    /// Write every run and the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelOpts,
}

/// Runs `mmnet experiment`.
pub fn run(a: ExperimentArgs) -> Result<()> {
    let fit_cfg = a.model.fit_config(a.seed)?;
    if a.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let ds = load_dataset(
        &a.data,
        &DatasetSpec {
            label_column: a.label_column.clone(),
            exclude: a.exclude.clone(),
            type_column: a.type_column.clone(),
            features: None,
        },
    )?;
    let protocol = ProtocolConfig {
        labeled: a.labeled,
        contamination: a.contamination,
        ..Default::default()
    };
    let settings = known_settings(&a, &ds, &protocol)?;
    let mut docs = Vec::with_capacity(settings.len());
    for known_set in &settings {
        let known = known_set.as_ref().map(|k| KnownType {
            types: ds.types.as_deref().unwrap_or_default(),
            known: k,
        });
        let label = known.map(|k| {
            format!(
                "known{}",
                k.known
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            )
        });
        if let Some(dir) = &a.export_splits {
            // One setting keeps DIR/run<N>/; several get DIR/known<K>/run<N>/.
            let dir = match (&label, settings.len()) {
                (Some(l), n) if n > 1 => dir.join(l),
                _ => dir.clone(),
            };
            export_splits(&dir, &ds, known, &protocol, a.runs, a.seed)?;
            println!("splits of {} runs written under {}", a.runs, dir.display());
            if a.export_only {
                continue;
            }
        }
        docs.push(run_setting(&a, &ds, known, &protocol, &fit_cfg)?);
    }
    if let Some(path) = &a.json
        && !docs.is_empty()
    {
        // One setting: the document itself (the format reports have always read); several:
        // one document per setting under `experiments`.
        let doc = if docs.len() == 1 {
            docs.pop().unwrap_or_default()
        } else {
            serde_json::json!({ "experiments": docs })
        };
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

/// The known-type settings asked for: `[None]` without --known-type(s), else one set of
/// known types per setting. `all` expands to every anomaly type; with `all`, a type with
/// too few anomalies for the protocol is skipped with a note, while a listed type that has
/// none is an error.
fn known_settings(
    a: &ExperimentArgs,
    ds: &mmnet_arrow::Dataset,
    protocol: &ProtocolConfig,
) -> Result<Vec<Option<Vec<i64>>>> {
    let column = a.type_column.as_deref().unwrap_or_default();
    let Some(types) = ds.types.as_deref() else {
        return Ok(vec![None]);
    };
    let count = |k: i64| {
        types
            .iter()
            .zip(&ds.labels)
            .filter(|&(&t, &l)| l && t == k)
            .count()
    };
    let check = |k: i64| -> Result<()> {
        if count(k) == 0 {
            let present = anomaly_types(types, &ds.labels);
            anyhow::bail!("no anomaly has `{column}` = {k} (anomaly types present: {present:?})");
        }
        Ok(())
    };
    if !a.known_types.is_empty() {
        for &k in &a.known_types {
            check(k)?;
        }
        return Ok(vec![Some(a.known_types.clone())]);
    }
    if a.known_type.is_empty() {
        return Ok(vec![None]);
    }
    let mut out = Vec::new();
    for v in &a.known_type {
        if v == "all" {
            for k in anomaly_types(types, &ds.labels) {
                // The training share of the type must cover D_l (as protocol::split cuts it).
                let train = count(k) - (count(k) as f64 * protocol.test_fraction).round() as usize;
                if train < a.labeled {
                    println!(
                        "skipping known type {k}: {train} training anomalies, fewer than --labeled {}",
                        a.labeled
                    );
                    continue;
                }
                out.push(Some(vec![k]));
            }
        } else {
            let k: i64 = v.parse().with_context(|| {
                format!("--known-type: `{v}` is neither an integer type nor `all`")
            })?;
            check(k)?;
            out.push(Some(vec![k]));
        }
    }
    if out.is_empty() {
        anyhow::bail!(
            "--known-type all: no anomaly type has {} training anomalies",
            a.labeled
        );
    }
    Ok(out)
}

/// Rows of D_u in the first run's split (the same size in every run), for the progress bar.
fn unlabeled_rows(
    ds: &mmnet_arrow::Dataset,
    known: Option<KnownType<'_>>,
    protocol: &ProtocolConfig,
    seed: u64,
) -> Result<usize> {
    let s = mmnet_core::protocol::split(&ds.labels, known, protocol, seed)?;
    Ok(s.unlabeled.len())
}

/// Runs one setting's experiment, prints it and returns its JSON document.
fn run_setting(
    a: &ExperimentArgs,
    ds: &mmnet_arrow::Dataset,
    known: Option<KnownType<'_>>,
    protocol: &ProtocolConfig,
    fit_cfg: &mmnet_core::FitConfig,
) -> Result<serde_json::Value> {
    println!(
        "{}: {} rows, {} features, {} anomalies; memory {} (K = L = {}), {} epochs, {} runs{}",
        a.data.display(),
        ds.labels.len(),
        ds.features.len(),
        ds.labels.iter().filter(|&&l| l).count(),
        a.model.memory_size,
        a.model.memory_size / 2,
        a.model.epochs,
        a.runs,
        known.map_or(String::new(), |k| format!(
            "; known anomaly type {} (the test set holds the other types)",
            k.describe()
        ))
    );
    let runs = a.runs;
    let mut bar = TrainBar::new(
        fit_cfg.train.epochs,
        a.model.quiet,
        runs * fit_cfg.trainings(unlabeled_rows(ds, known, protocol, a.seed)?, a.labeled),
    );
    let report = mmnet_core::experiment::run_experiment(
        ds.x.view(),
        &ds.labels,
        &ds.features,
        ds.types.as_deref(),
        known,
        protocol,
        fit_cfg,
        runs,
        a.seed,
        &mut bar,
        &mut |r| {
            let cells: Vec<String> = r
                .metrics
                .iter()
                .map(|m| format!("{} {:.4}/{:.4}", m.variant, m.auc_roc, m.auc_pr))
                .collect();
            println!(
                "run {:>2} seed {:>3} | D_u {} D_l {} test {} ({} anomalies) | {:.1} s | AUC-ROC/AUC-PR: {}",
                r.run,
                r.seed,
                r.sizes[0],
                r.sizes[1],
                r.sizes[2],
                r.test_anomalies,
                r.train_seconds,
                cells.join("  ")
            );
        },
    )?;
    bar.finish();
    println!("\n{:<18} {:>17} {:>17}", "score", "AUC-ROC", "AUC-PR");
    for s in &report.summary {
        println!(
            "{:<18} {:>8.4} +- {:.4} {:>8.4} +- {:.4}",
            s.variant, s.auc_roc.mean, s.auc_roc.std, s.auc_pr.mean, s.auc_pr.std
        );
    }
    print_per_type(&report, a.type_column.as_deref().unwrap_or("type"));
    Ok(serde_json::to_value(ExperimentDoc::new(
        a.data.display().to_string(),
        a.runs,
        a.seed,
        protocol,
        fit_cfg,
        a.type_column.clone(),
        known,
        &report,
    ))?)
}

/// AUC-ROC per test anomaly type (mean over runs) of the default and every variant.
fn print_per_type(report: &mmnet_core::experiment::ExperimentReport, column: &str) {
    let Some(first) = report.per_type.first() else {
        return;
    };
    let names: Vec<&str> = first.variants.iter().map(|v| v.variant.as_str()).collect();
    println!(
        "\nAUC-ROC per test anomaly type (its anomalies against the test normals, mean over runs; `anomalies` counts them over all runs):"
    );
    print!("{:<12} {:>9}", column, "anomalies");
    for n in &names {
        print!(" {n:>w$}", w = n.len().max(8));
    }
    println!();
    for t in &report.per_type {
        print!("{:<12} {:>9}", t.anomaly_type, t.anomalies);
        for n in &names {
            let w = n.len().max(8);
            match t.variants.iter().find(|v| v.variant == *n) {
                Some(v) => print!(" {:>w$.4}", v.auc_roc.mean),
                None => print!(" {:>w$}", "-"),
            }
        }
        println!();
    }
}

/// Writes every run's split: `unlabeled.parquet` (D_u), `labeled.parquet` (D_l),
/// `test.parquet`, and `train.parquet` (D_u with label 0 then D_l with label 1, the input
/// `mmnet train` expects). Every file also has `true_label` (the dataset's label; in D_u it
/// reveals the contamination, which no detector may use for training).
fn export_splits(
    dir: &std::path::Path,
    ds: &mmnet_arrow::Dataset,
    known: Option<KnownType<'_>>,
    protocol: &ProtocolConfig,
    runs: usize,
    base_seed: u64,
) -> Result<()> {
    use mmnet_core::experiment::{run_seed, take_rows};
    for run in 0..runs {
        let seed = run_seed(base_seed, run);
        let s = mmnet_core::protocol::split(&ds.labels, known, protocol, seed)?;
        let rdir = dir.join(format!("run{run}"));
        std::fs::create_dir_all(&rdir).with_context(|| format!("creating {}", rdir.display()))?;
        let truth =
            |rows: &[usize]| -> Vec<i8> { rows.iter().map(|&i| ds.labels[i] as i8).collect() };
        let write = |name: &str, rows: &[usize], label: Vec<i8>| -> Result<()> {
            let x = take_rows(ds.x.view(), rows);
            let mut extra = vec![("label", label), ("true_label", truth(rows))];
            // The anomaly type, for per-type evaluation of the test set; training files
            // carry it too (a detector must not train on it, like `true_label`).
            if let Some(t) = &ds.types {
                let ty = rows
                    .iter()
                    .map(|&i| {
                        i8::try_from(t[i]).map_err(|_| {
                            anyhow::anyhow!(
                                "anomaly type {} of row {i} does not fit the exported int8 `anomaly_type` column (-128..=127)",
                                t[i]
                            )
                        })
                    })
                    .collect::<Result<Vec<i8>>>()?;
                extra.push(("anomaly_type", ty));
            }
            mmnet_arrow::write::write_matrix(&rdir.join(name), &ds.features, x.view(), &extra)?;
            Ok(())
        };
        write(
            "unlabeled.parquet",
            &s.unlabeled,
            vec![0; s.unlabeled.len()],
        )?;
        write("labeled.parquet", &s.labeled, vec![1; s.labeled.len()])?;
        write("test.parquet", &s.test, truth(&s.test))?;
        let train_rows: Vec<usize> = s.unlabeled.iter().chain(&s.labeled).copied().collect();
        let mut train_label = vec![0i8; s.unlabeled.len()];
        train_label.extend(std::iter::repeat_n(1i8, s.labeled.len()));
        write("train.parquet", &train_rows, train_label)?;
        let meta = serde_json::json!({
            "run": run, "seed": seed,
            "unlabeled": s.unlabeled.len(), "labeled": s.labeled.len(), "test": s.test.len(),
            "note": "raw (unscaled) features; fit min-max scaling on unlabeled + labeled only"
        });
        std::fs::write(
            rdir.join("split.json"),
            serde_json::to_string_pretty(&meta)?,
        )?;
    }
    Ok(())
}
