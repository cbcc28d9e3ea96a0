//! `mmnet train`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mmnet_arrow::{DatasetSpec, load_dataset};
use mmnet_core::ensemble::Members;
use mmnet_core::params::MaskStrategy;
use mmnet_core::scaler::Scaling;
use mmnet_core::warm::WarmStart;
use mmnet_core::{FitConfig, FitOptions, ScoreVariant, TrainData};

use crate::progress::TrainBar;

/// Model and training options shared by `train` and `experiment`.
#[derive(Debug, Args, Clone)]
pub struct ModelOpts {
    /// Memory size K + L (split in halves between normal and anomaly prototypes).
    #[arg(long, default_value_t = 64)]
    pub memory_size: usize,
    /// Training epochs.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Unlabeled rows per mini-batch (each batch adds as many labeled rows).
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// Score reported as mmnet_score: auto (default: of the fusions mse, mse_kl,
    /// mse_half_logit, mse_half_logit_kl, mse_logit and combined, the one that separates
    /// held-out labeled anomalies from held-out unlabeled rows best, exact ties going to the
    /// first, at the cost of one extra training run on 2/3 of the labels), one of those
    /// fusions (robust z-scores of ln MSE, the anomaly log-odds and -S_KL), paper (eq. 19),
    /// s_sum, s_kl or calibrated. With --init-from the default is the parent's score (a
    /// deployed model's score, and what its alerts were set on, stays as it was); say
    /// `--score auto` to choose again.
    #[arg(long, value_parser = parse_choice)]
    pub score: Option<ScoreChoice>,
    /// lambda in the paper's score S = -(S_sum + lambda S_KL).
    #[arg(long, default_value_t = 0.1)]
    pub lambda: f64,
    /// Feature scaling: auto (log-compress features whose training skewness > 1, then
    /// min-max) or minmax (the paper's protocol read literally).
    #[arg(long, default_value = "auto", value_parser = parse_scaling)]
    pub scaling: Scaling,
    /// Memory masking in training: soft (the paper's L_mask), hard (each row addresses only
    /// its own part) or none (no masking; a MemAE-like baseline). For ablations.
    #[arg(long, default_value = "soft", value_parser = parse_mask)]
    pub mask: MaskStrategy,
    /// Anomaly threshold = this quantile of the score over the unlabeled training rows.
    #[arg(long, default_value_t = mmnet_core::train::DEFAULT_THRESHOLD_QUANTILE)]
    pub threshold_quantile: f64,
    /// Networks trained from different seeds and averaged into mmnet_score: auto (5 up to
    /// 4,000 unlabeled rows, fewer up to 10,000, one above: an ensemble never trains on more
    /// rows than one model on 20,000) or a number from 1 (a single network) to 16. With
    /// --init-from the parent's count is kept.
    #[arg(long, default_value = "auto", value_parser = parse_ensemble)]
    pub ensemble: Members,
    /// Add the supervised term to mmnet_score (on by default): a logistic regression of
    /// labeled anomalies against unlabeled rows on the scaled features, standardised over
    /// the unlabeled rows, its positive part added to the network's standardised score
    /// (docs/ACCURACY.md). `off` reports the network's score alone. With --init-from the
    /// default is the parent's (on if it has the term).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub supervised: Option<bool>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--score`: chosen on a validation split, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreChoice {
    /// Chosen by [`mmnet_core::select`].
    Auto,
    /// This one.
    Fixed(ScoreVariant),
}

fn parse_choice(s: &str) -> Result<ScoreChoice, String> {
    if s == "auto" {
        return Ok(ScoreChoice::Auto);
    }
    ScoreVariant::from_name(s)
        .map(ScoreChoice::Fixed)
        .ok_or_else(|| {
            let names: Vec<_> = ScoreVariant::ALL.iter().map(|v| v.name()).collect();
            format!("unknown score `{s}` (one of: auto, {})", names.join(", "))
        })
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, got `{s}`")),
    }
}

fn parse_ensemble(s: &str) -> Result<Members, String> {
    Members::parse(s).map_err(|e| e.to_string())
}

fn parse_scaling(s: &str) -> Result<Scaling, String> {
    Scaling::from_name(s).ok_or_else(|| format!("unknown scaling `{s}` (one of: auto, minmax)"))
}

fn parse_mask(s: &str) -> Result<MaskStrategy, String> {
    MaskStrategy::from_name(s)
        .ok_or_else(|| format!("unknown mask strategy `{s}` (one of: soft, hard, none)"))
}

impl ModelOpts {
    /// The fit configuration these options describe, for `seed`.
    pub fn fit_config(&self, seed: u64) -> Result<FitConfig> {
        Ok(FitOptions {
            memory_size: self.memory_size,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            score: match self.score {
                None | Some(ScoreChoice::Auto) => None,
                Some(ScoreChoice::Fixed(v)) => Some(v),
            },
            lambda: self.lambda,
            scaling: self.scaling,
            mask: self.mask,
            threshold_quantile: self.threshold_quantile,
            seed,
            ensemble: self.ensemble,
            supervised: self.supervised.unwrap_or(true),
        }
        .fit_config()?)
    }
}

/// Arguments of `mmnet train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training table: .parquet, .csv or ADBench .npz (X, y), a directory of Parquet files
    /// (hive-style partitions become columns: --exclude them), or an object-store URL of
    /// either (`s3://bucket/prefix/`).
    #[arg(long)]
    pub data: PathBuf,
    /// Object-store setting KEY=VALUE for an s3:// --data (endpoint, region, allow_http,
    /// ...). Credentials come from the AWS environment. Repeatable.
    #[arg(long = "storage-option")]
    pub storage_options: Vec<String>,
    /// Column marking labeled anomalies (1); every other row (0) is unlabeled.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Columns that are neither features nor label (ids, timestamps), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Output model directory (manifest.json + weights.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed for initialisation, shuffling and labeled draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Warm start: continue from this model (same features; its architecture and scaling
    /// are kept) instead of a random initialisation, typically for fewer --epochs with new
    /// labeled anomalies. The manifest records the parent's digest, the data and the epochs.
    #[arg(long, value_name = "MODEL")]
    pub init_from: Option<PathBuf>,
    /// Store the scoring precision in the manifest: bf16 makes every surface score with
    /// bf16 products unless told otherwise (training and the threshold stay f32).
    #[arg(long, value_parser = crate::parse_precision, default_value = "f32")]
    pub precision: mmnet_core::kernel::Precision,
    /// With --init-from: add N anomaly-memory items for a newly labeled kind, started at
    /// encodings of the new labeled rows (the existing items are not moved at the start).
    /// Not for anomalies the parent missed: it encodes those among normal rows, and items
    /// grown there draw normal rows too (docs/ACCURACY.md, the model loop).
    #[arg(long, value_name = "N", requires = "init_from", default_value_t = 0)]
    pub grow_anomaly_memory: usize,
    /// With --init-from: fit the scaling again on the new data (default: the parent's).
    #[arg(long, requires = "init_from")]
    pub refit_scaling: bool,
    #[command(flatten)]
    pub model: ModelOpts,
}

/// Loads a training table from a directory or an object store: DataFusion streams its
/// batches (every file, partitions as columns) into the same dataset builder files use.
fn load_through_datafusion(
    location: &str,
    storage: &mmnet_arrow::sql::StorageOptions,
    spec: &DatasetSpec,
) -> Result<mmnet_arrow::Dataset> {
    use futures::StreamExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // One partition: files are read one after another in path order, so the rows (and the
    // trained model) are the same on every run and from every store holding the same files.
    let ctx = datafusion::prelude::SessionContext::new_with_config_rt(
        datafusion::prelude::SessionConfig::new().with_target_partitions(1),
        mmnet_arrow::sql::store::runtime_env(storage, None)?,
    );
    let mut stream = rt.block_on(mmnet_arrow::sql::read_table(&ctx, location))?;
    let schema = stream.schema();
    let source = std::path::Path::new(location);
    let batches = std::iter::from_fn(|| {
        rt.block_on(stream.next()).map(|b| {
            b.map_err(|e| mmnet_arrow::TableError::Malformed {
                path: source.to_path_buf(),
                reason: e.to_string(),
            })
        })
    });
    Ok(mmnet_arrow::dataset_from_batches(
        source, &schema, batches, spec,
    )?)
}

/// Runs `mmnet train`.
pub fn run(a: TrainArgs) -> Result<()> {
    let mut cfg = a.model.fit_config(a.seed)?;
    let parent = match &a.init_from {
        Some(p) => Some(
            mmnet_core::artifact::load(p)
                .with_context(|| format!("--init-from {}", p.display()))?,
        ),
        None => None,
    };
    let spec = DatasetSpec {
        label_column: a.label_column.clone(),
        exclude: a.exclude.clone(),
        // A warm start reads the parent's features, in its order.
        features: parent.as_ref().map(|p| p.features.clone()),
        ..Default::default()
    };
    let location = a.data.to_string_lossy().into_owned();
    let ds = if mmnet_arrow::sql::reads_through_datafusion(&location) {
        let storage = mmnet_arrow::sql::StorageOptions::parse(&a.storage_options)?;
        load_through_datafusion(&location, &storage, &spec)?
    } else {
        load_dataset(&a.data, &spec)?
    };
    if let Some(parent) = parent {
        if a.model.score.is_none() {
            // Keep the parent's score: no validation probe, its variant and lambda.
            cfg.selection = None;
            cfg.score.variant = parent.score.variant;
            cfg.score.lambda = parent.score.lambda;
        }
        if a.model.supervised.is_none() {
            cfg.supervised = parent.score.supervised.as_ref().map(|_| Default::default());
        }
        cfg.warm_start = Some(WarmStart {
            parent,
            refit_scaling: a.refit_scaling,
            grow_anomaly_memory: a.grow_anomaly_memory,
            data: a.data.display().to_string(),
        });
    }
    let (xu, xl) = ds.training_parts(&a.data, &a.label_column)?;
    let mut bar = TrainBar::new(
        cfg.train.epochs,
        a.model.quiet,
        cfg.trainings(xu.nrows(), xl.nrows()),
    );
    let model = mmnet_core::fit(
        TrainData {
            features: &ds.features,
            unlabeled: xu.view(),
            labeled: xl.view(),
        },
        &cfg,
        &mut bar,
    )
    .with_context(|| format!("training on {}", a.data.display()))?;
    bar.finish();
    let model = model.with_precision(a.precision);
    mmnet_core::artifact::save(&model, &a.out)?;
    println!(
        "trained on {} unlabeled + {} labeled rows, {} features, {} epochs in {:.1} s",
        xu.nrows(),
        xl.nrows(),
        ds.features.len(),
        cfg.train.epochs,
        model.training.wall_seconds
    );
    if let Some(last) = model.training.history.last() {
        println!(
            "final loss per row: total {:.4} (rec {:.4}, mask {:.4}, kl {:.3})",
            last.loss.total, last.loss.rec, last.loss.mask, last.loss.kl
        );
    }
    if model.ensemble_size() > 1 {
        println!(
            "ensemble of {} networks from seed {} (--ensemble): mmnet_score is the mean of their standardised scores",
            model.ensemble_size(),
            cfg.train.seed
        );
    }
    println!(
        "score `{}`, threshold {:.6} (quantile {} of unlabeled training scores)",
        model.score.describe(),
        model.threshold.value,
        model.threshold.quantile.unwrap_or(f64::NAN)
    );
    if let Some(sel) = &model.score.selection {
        let cells: Vec<String> = sel
            .validation
            .iter()
            .map(|c| format!("{} {:.4}/{:.4}", c.variant.name(), c.auc_roc, c.auc_pr))
            .collect();
        println!(
            "score `{}` chosen on {} held-out unlabeled + {} held-out labeled rows (AUC-ROC/AUC-PR): {}",
            sel.chosen.name(),
            sel.validation_rows[0],
            sel.validation_rows[1],
            cells.join(", ")
        );
    }
    if let Some(l) = &model.training.lineage {
        println!(
            "warm-started from {} ({} epochs{})",
            &l.parent_digest[..12],
            l.epochs,
            if l.grown_anomaly_memory > 0 {
                format!(", {} anomaly-memory items added", l.grown_anomaly_memory)
            } else {
                String::new()
            }
        );
    }
    println!("model written to {}", a.out.display());
    Ok(())
}
