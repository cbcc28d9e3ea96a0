//! `mmnet eval`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mmnet_arrow::{DatasetSpec, load_dataset};
use mmnet_core::experiment::{evaluate_variants, with_default};

/// A model and a labeled table to judge it on (`eval` and `report`).
#[derive(Debug, Args)]
pub struct LabeledArgs {
    /// Model directory written by `mmnet train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Labeled table: .parquet, .csv or .npz (ideally rows the model was not trained on).
    #[arg(long)]
    pub data: PathBuf,
    /// Column with the true labels (1 = anomaly).
    #[arg(long, default_value = "label")]
    pub label_column: String,
}

impl LabeledArgs {
    /// Loads the model, then the model's feature columns and the label column of the table.
    pub fn load(&self) -> Result<(mmnet_core::Model, mmnet_arrow::Dataset)> {
        let model = mmnet_core::artifact::load(&self.model)?;
        let ds = load_dataset(
            &self.data,
            &DatasetSpec {
                label_column: self.label_column.clone(),
                features: Some(model.features.clone()),
                ..Default::default()
            },
        )?;
        Ok((model, ds))
    }
}

/// Arguments of `mmnet eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub input: LabeledArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mmnet eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    let (model, ds) = a.input.load()?;
    let scores = model.score_all_variants(ds.x.view())?;
    let default = model.score(ds.x.view(), false, None)?.score;
    let metrics = with_default(
        evaluate_variants(&scores, &ds.labels)?,
        &default,
        &ds.labels,
        model.score.variant.name(),
    )?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": a.input.model,
                "data": a.input.data,
                "rows": ds.labels.len(),
                "anomalies": ds.labels.iter().filter(|&&l| l).count(),
                "default_score": model.score.variant.name(),
                "supervised_term": model.score.supervised.is_some(),
                "metrics": metrics,
            }))?
        );
    } else {
        println!(
            "{} rows, {} anomalies; mmnet_score = {}",
            ds.labels.len(),
            ds.labels.iter().filter(|&&l| l).count(),
            model.score.describe()
        );
        println!("{:<18} {:>8} {:>8}", "score", "AUC-ROC", "AUC-PR");
        for m in &metrics {
            println!("{:<18} {:>8.4} {:>8.4}", m.variant, m.auc_roc, m.auc_pr);
        }
    }
    Ok(())
}
