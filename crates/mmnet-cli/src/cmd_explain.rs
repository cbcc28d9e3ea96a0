//! `mmnet explain`: why one record scored as it did.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mmnet_core::explain::{Explanation, MemoryPart};

/// Arguments of `mmnet explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Model directory written by `mmnet train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Table holding the record: .parquet, .csv or .npz (features matched by name).
    #[arg(long)]
    pub input: PathBuf,
    /// Row to explain, 0-based.
    #[arg(long)]
    pub row: usize,
    /// Memory items to list.
    #[arg(long, default_value_t = 5)]
    pub top_memory: usize,
    /// Features to list.
    #[arg(long, default_value_t = 10)]
    pub top_features: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `mmnet explain`.
pub fn run(a: ExplainArgs) -> Result<()> {
    let model = mmnet_core::artifact::load(&a.model)?;
    let x = mmnet_arrow::read_row(&a.input, &model.features, a.row)?;
    let e = model
        .explain(x.view(), a.top_memory, a.top_features)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no explanation computed"))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "input": a.input, "row": a.row, "score": model.score.describe(),
                "threshold": model.threshold.value, "explanation": e,
            }))?
        );
    } else {
        print_text(&a, &e, &model.score.describe(), model.threshold.value);
    }
    Ok(())
}

fn print_text(a: &ExplainArgs, e: &Explanation, variant: &str, threshold: f32) {
    println!("{} row {}", a.input.display(), a.row);
    println!(
        "mmnet_score ({variant}) {:.4}  threshold {:.4}  -> {}",
        e.mmnet_score,
        threshold,
        if e.is_anomaly { "ANOMALY" } else { "normal" }
    );
    println!(
        "attention: {:.1} % on normal memory M_u, {:.1} % on anomaly memory M_l; S_KL {:.3} (low = attention spread, matches no prototype); reconstruction MSE {:.5}",
        100.0 * e.s_sum,
        100.0 * (1.0 - e.s_sum),
        e.s_kl,
        e.mse
    );
    println!("\nmost attended memory items:");
    println!("{:>6}  {:<8} {:>8}", "item", "part", "weight");
    for m in &e.memory {
        let part = match m.part {
            MemoryPart::Normal => "normal",
            MemoryPart::Anomaly => "anomaly",
        };
        println!("{:>6}  {:<8} {:>8.4}", m.item, part, m.weight);
    }
    println!("\nfeatures with the largest share of the reconstruction error:");
    println!(
        "{:<32} {:>14} {:>16} {:>7}",
        "feature", "value", "reconstruction", "share"
    );
    for f in &e.features {
        println!(
            "{:<32} {:>14.6} {:>16.6} {:>6.1}%",
            f.feature,
            f.value,
            f.reconstruction,
            100.0 * f.share
        );
    }
}
