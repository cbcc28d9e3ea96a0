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
    /// Rows to score: .parquet, .csv or .npz, a directory of Parquet files, or an
    /// object-store URL of either (`s3://bucket/prefix/`). Features are matched by name.
    #[arg(long)]
    pub input: PathBuf,
    /// Output: .parquet or .csv (local or `s3://...`), the input columns plus mmnet_score,
    /// s_sum, s_kl, is_anomaly.
    #[arg(long)]
    pub output: PathBuf,
    /// Score on an Apache Ballista cluster (`df://HOST:PORT` of `mmnet cluster scheduler`):
    /// the input and output must be places every executor can reach.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Object-store setting KEY=VALUE for s3:// input and output (endpoint, region,
    /// allow_http, ...). Credentials come from the AWS environment. Repeatable.
    #[arg(long = "storage-option")]
    pub storage_options: Vec<String>,
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

/// `mmnet score` through DataFusion, for a cluster, a directory or an object store: one
/// query that appends the same four columns the local scorer writes, streamed from the
/// input to the output in bounded memory (by the executors, on a cluster).
fn run_sql(a: ScoreArgs) -> Result<()> {
    anyhow::ensure!(
        a.top == 0,
        "--top needs the local scorer; with --cluster, a directory or an object store rank \
         with: mmnet sql ... \"SELECT *, mmnet_score(*) AS s FROM t ORDER BY s DESC LIMIT N\""
    );
    mmnet_arrow::FileFormat::from_path(&a.output, true)?;
    let input = a.input.to_string_lossy().into_owned();
    let output = a.output.to_string_lossy().into_owned();
    let placement = crate::cmd_sql::Placement {
        cluster: a.cluster.clone(),
        storage: mmnet_arrow::sql::StorageOptions::parse(&a.storage_options)?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let s = crate::cmd_sql::session(
            &[format!("mmnet={}", a.model.display())],
            &[format!("input={input}")],
            a.precision,
            &placement,
        )
        .await?;
        // The local scorer's refusal of inputs that already carry a score column.
        let schema = s.ctx.table("input").await?.schema().as_arrow().clone();
        mmnet_arrow::write::scored_schema(&a.input, &schema)?;
        let flag = match a.threshold {
            Some(t) => format!("mmnet_score(*) > CAST({t} AS REAL)"),
            None => "mmnet_is_anomaly(*)".to_string(),
        };
        let sql = format!(
            "SELECT *, mmnet_score(*) AS mmnet_score, mmnet_s_sum(*) AS s_sum, \
             mmnet_s_kl(*) AS s_kl, {flag} AS is_anomaly FROM input"
        );
        crate::cmd_sql::run_query(&s.ctx, &sql, Some(&output)).await
    })
}

/// Runs `mmnet score`.
pub fn run(a: ScoreArgs) -> Result<()> {
    if a.cluster.is_some()
        || mmnet_arrow::sql::reads_through_datafusion(&a.input.to_string_lossy())
        || mmnet_arrow::sql::store::is_url(&a.output.to_string_lossy())
    {
        return run_sql(a);
    }
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
