//! `mmnet eval`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mmnet_arrow::{DatasetSpec, load_dataset};
use mmnet_core::experiment::evaluate_variants;

/// Arguments of `mmnet eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model directory written by `mmnet train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Labeled table: .parquet, .csv or .npz.
    #[arg(long)]
    pub data: PathBuf,
    /// Column with the true labels (1 = anomaly).
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Loads a model and the model's feature columns plus `label_column` of a labeled table
/// (shared by `eval` and `report`).
pub fn load_labeled(
    model: &std::path::Path,
    data: &std::path::Path,
    label_column: &str,
) -> Result<(mmnet_core::Model, mmnet_arrow::Dataset)> {
    let model = mmnet_core::artifact::load(model)?;
    let ds = load_dataset(
        data,
        &DatasetSpec {
            label_column: label_column.to_string(),
            features: Some(model.features.clone()),
            ..Default::default()
        },
    )?;
    Ok((model, ds))
}

/// Runs `mmnet eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    let (model, ds) = load_labeled(&a.model, &a.data, &a.label_column)?;
    let scores = model.score_all_variants(ds.x.view())?;
    let metrics = evaluate_variants(&scores, &ds.labels)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": a.model,
                "data": a.data,
                "rows": ds.labels.len(),
                "anomalies": ds.labels.iter().filter(|&&l| l).count(),
                "default_score": model.score.variant.name(),
                "metrics": metrics,
            }))?
        );
    } else {
        println!(
            "{} rows, {} anomalies; mmnet_score = {}",
            ds.labels.len(),
            ds.labels.iter().filter(|&&l| l).count(),
            model.score.variant.name()
        );
        println!("{:<10} {:>8} {:>8}", "score", "AUC-ROC", "AUC-PR");
        for m in &metrics {
            println!("{:<10} {:>8.4} {:>8.4}", m.variant, m.auc_roc, m.auc_pr);
        }
    }
    Ok(())
}
