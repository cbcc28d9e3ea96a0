//! `mmnet score`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::progress::rows_bar;

/// Arguments of `mmnet score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Model directory written by `mmnet train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Rows to score: .parquet, .csv or .npz. Features are matched by column name.
    #[arg(long)]
    pub input: PathBuf,
    /// Output: .parquet or .csv, the input columns plus mmnet_score, s_sum, s_kl, is_anomaly.
    #[arg(long)]
    pub output: PathBuf,
    /// Override the model's anomaly threshold on mmnet_score.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Also print the N highest-scored rows.
    #[arg(long, default_value_t = 0)]
    pub top: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Arithmetic of the scoring products, f32 or bf16 (default: the model's manifest).
    /// bf16 rounds weights and activations and sums in f32: about 2.5x the rows/s where
    /// the CPU has AMX, scores within about 1e-3 of f32 (docs/ACCURACY.md).
    #[arg(long, value_parser = crate::parse_precision)]
    pub precision: Option<mmnet_core::kernel::Precision>,
}

/// Runs `mmnet score`.
pub fn run(a: ScoreArgs) -> Result<()> {
    let mut model = mmnet_core::artifact::load(&a.model)?;
    if let Some(p) = a.precision {
        model = model.with_precision(p);
    }
    // Check the output format before reading anything, so a typo fails fast.
    mmnet_arrow::FileFormat::from_path(&a.output, true)?;
    let start = Instant::now();
    let mut bar = None;
    let summary = mmnet_arrow::score_file(
        &model,
        &a.input,
        &a.output,
        a.threshold,
        a.top,
        &mut |done, total| {
            let b = bar.get_or_insert_with(|| rows_bar(total, a.quiet));
            b.set_position(done as u64);
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "scored {} rows in {:.2} s ({:.0} rows/s): {} anomalies at threshold {:.6}{}",
        summary.rows,
        secs,
        summary.rows as f64 / secs.max(1e-9),
        summary.anomalies,
        a.threshold.unwrap_or(model.threshold.value),
        if summary.incomplete > 0 {
            format!(
                "; {} rows with null or non-finite features got NULL scores",
                summary.incomplete
            )
        } else {
            String::new()
        }
    );
    println!("written to {}", a.output.display());
    if !summary.top.is_empty() {
        println!("\ntop {} rows by mmnet_score:", summary.top.len());
        println!(
            "{:>9} {:>12} {:>8} {:>9} {:>10}",
            "row", "mmnet_score", "s_sum", "s_kl", "is_anomaly"
        );
        for t in &summary.top {
            println!(
                "{:>9} {:>12.5} {:>8.4} {:>9.3} {:>10}",
                t.row, t.score, t.s_sum, t.s_kl, t.is_anomaly
            );
        }
    }
    Ok(())
}
