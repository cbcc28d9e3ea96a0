//! `mmnet experiment`: the paper's protocol (SPEC) end to end.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mmnet_arrow::{DatasetSpec, load_dataset};
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
    /// Column with the anomaly type (for the known/unknown protocol).
    #[arg(long, requires = "known_type")]
    pub type_column: Option<String>,
    /// The anomaly type labeled in training; the test set holds the other types.
    #[arg(long, requires = "type_column")]
    pub known_type: Option<i64>,
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
    let known = match (&ds.types, a.known_type) {
        (Some(t), Some(k)) => {
            if !t.iter().zip(&ds.labels).any(|(&ty, &l)| l && ty == k) {
                anyhow::bail!(
                    "no anomaly has `{}` = {k}",
                    a.type_column.as_deref().unwrap_or_default()
                );
            }
            Some(KnownType { types: t, known: k })
        }
        _ => None,
    };
    let protocol = ProtocolConfig {
        labeled: a.labeled,
        contamination: a.contamination,
        ..Default::default()
    };
    if let Some(dir) = &a.export_splits {
        export_splits(dir, &ds, known, &protocol, a.runs, a.seed)?;
        println!("splits of {} runs written under {}", a.runs, dir.display());
        if a.export_only {
            return Ok(());
        }
    }
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
            "; known anomaly type {}",
            k.known
        ))
    );
    let runs = a.runs;
    let mut bar = TrainBar::new(
        fit_cfg.train.epochs,
        a.model.quiet,
        runs * fit_cfg.trainings(a.labeled),
    );
    let report = mmnet_core::experiment::run_experiment(
        ds.x.view(),
        &ds.labels,
        &ds.features,
        known,
        &protocol,
        &fit_cfg,
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
    println!("\n{:<10} {:>17} {:>17}", "score", "AUC-ROC", "AUC-PR");
    for s in &report.summary {
        println!(
            "{:<10} {:>8.4} +- {:.4} {:>8.4} +- {:.4}",
            s.variant, s.auc_roc.mean, s.auc_roc.std, s.auc_pr.mean, s.auc_pr.std
        );
    }
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "data": a.data,
            "runs": a.runs,
            "seed": a.seed,
            "labeled": a.labeled,
            "contamination": a.contamination,
            "memory_size": a.model.memory_size,
            "epochs": a.model.epochs,
            "known_type": a.known_type,
            "report": report,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
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
            mmnet_arrow::write::write_matrix(
                &rdir.join(name),
                &ds.features,
                x.view(),
                &[("label", label), ("true_label", truth(rows))],
            )?;
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
