//! `mmnet sql`: SQL over Parquet/CSV/NPZ tables with model functions, one-shot or interactive.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::SessionContext;
use mmnet_arrow::sql::{ModelRegistry, register_table};
use mmnet_core::kernel::Precision;

/// Arguments of `mmnet sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Model: `DIR` (functions mmnet_score, mmnet_s_sum, mmnet_s_kl, mmnet_is_anomaly) or
    /// `NAME=DIR` (functions NAME_score, ...). Repeatable.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Table: `NAME=LOCATION`, a .parquet, .csv or .npz file, a directory of Parquet files
    /// (hive-style partitions such as `day=2026-11-30/` become columns), or an object-store
    /// URL of either (`s3://bucket/prefix/`). Repeatable.
    #[arg(long = "table")]
    pub tables: Vec<String>,
    /// Write the result to this .parquet or .csv file (local or `s3://...`) instead of
    /// printing it. On a cluster the executors write it: it must be a place they can reach.
    #[arg(long)]
    pub output: Option<String>,
    /// Run on an Apache Ballista cluster started with `mmnet cluster scheduler` and
    /// `mmnet cluster executor`: `df://HOST:PORT` of the scheduler. Tables must be files or
    /// object-store URLs every executor can read (NPZ tables are refused).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Object-store setting KEY=VALUE for s3:// tables and output (endpoint, region,
    /// allow_http, virtual_hosted_style_request, ...). Credentials come from the AWS
    /// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...). Repeatable.
    #[arg(long = "storage-option")]
    pub storage_options: Vec<String>,
    /// Arithmetic of the scoring products for every model, f32 or bf16 (default: each
    /// model's manifest).
    #[arg(long, value_parser = crate::parse_precision)]
    pub precision: Option<Precision>,
    /// The query. Without it, an interactive prompt opens (end statements with `;`).
    pub query: Option<String>,
}

fn split_named(s: &str, default: Option<&str>, what: &str) -> Result<(String, PathBuf)> {
    match s.split_once('=') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), PathBuf::from(p))),
        _ => match default {
            Some(d) => Ok((d.to_string(), PathBuf::from(s))),
            None => bail!("{what} `{s}` must be NAME=FILE"),
        },
    }
}

/// A session with every model and table registered, and where each model came from (for
/// `\reload`).
pub struct Session {
    pub(crate) ctx: SessionContext,
    registry: ModelRegistry,
    models: Vec<(String, PathBuf)>,
    precision: Option<Precision>,
}

/// Loads the model at `path`, with `precision` when one is given.
fn load(path: &std::path::Path, precision: Option<Precision>) -> Result<mmnet_core::Model> {
    let model = mmnet_core::artifact::load(path)?;
    Ok(match precision {
        Some(p) => model.with_precision(p),
        None => model,
    })
}

/// Where a query runs and how it reaches object stores.
#[derive(Debug, Default, Clone)]
pub struct Placement {
    /// `df://HOST:PORT` of a Ballista scheduler, or `None` for this process.
    pub cluster: Option<String>,
    /// `--storage-option` values.
    pub storage: mmnet_arrow::sql::StorageOptions,
}

/// Builds a session with every model and table registered.
pub async fn session(
    models: &[String],
    tables: &[String],
    precision: Option<Precision>,
    placement: &Placement,
) -> Result<Session> {
    let ctx = match &placement.cluster {
        Some(url) => {
            for t in tables {
                let (name, loc) = split_named(t, None, "--table")?;
                if mmnet_arrow::sql::loads_into_memory(&loc.to_string_lossy()) {
                    bail!(
                        "--table {name}={}: NPZ tables are loaded into this process's memory and \
                         cannot be scanned by a cluster's executors; convert it to Parquet \
                         (mmnet sql --table {name}={} --output {name}.parquet \"SELECT * FROM {name}\")",
                        loc.display(),
                        loc.display()
                    );
                }
            }
            mmnet_cluster::remote_session(url, &placement.storage)
                .await
                .with_context(|| format!("connecting to the cluster at {url}"))?
        }
        None => mmnet_arrow::sql::new_session_with(&placement.storage)?,
    };
    let mut registry = ModelRegistry::default();
    let mut sources = Vec::new();
    for m in models {
        let (name, path) = split_named(m, Some("mmnet"), "--model")?;
        let model = load(&path, precision)?;
        registry
            .register(&ctx, &name, model)
            .with_context(|| format!("registering model {}", path.display()))?;
        sources.push((name, path));
    }
    for t in tables {
        let (name, path) = split_named(t, None, "--table")?;
        register_table(&ctx, &name, &path.to_string_lossy()).await?;
    }
    Ok(Session {
        ctx,
        registry,
        models: sources,
        precision,
    })
}

impl Session {
    /// `\reload`: loads every model again from its path (a flipped symlink is followed); a
    /// model that fails to load is reported and the one in use stays.
    fn reload(&mut self) {
        for (name, path) in &self.models {
            let loaded = load(path, self.precision)
                .and_then(|m| Ok(self.registry.replace(&self.ctx, name, m)?));
            match loaded {
                Ok(old) => {
                    let new = self.registry_digest(name);
                    if new.as_deref() == Some(old.digest.as_str()) {
                        println!("model {name}: unchanged ({})", &old.digest[..12]);
                    } else {
                        println!(
                            "model {name}: {} -> {} ({})",
                            &old.digest[..12],
                            new.as_deref().map_or("?", |d| &d[..12]),
                            path.display()
                        );
                    }
                }
                Err(e) => eprintln!("model {name}: reload failed, keeping the old one: {e:#}"),
            }
        }
    }

    fn registry_digest(&self, name: &str) -> Option<String> {
        self.registry.digest(name)
    }
}

/// DataFusion wraps planning errors in context layers whose messages repeat the inner one;
/// report the innermost error once.
fn root(e: datafusion::error::DataFusionError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.find_root())
}

pub(crate) async fn run_query(ctx: &SessionContext, sql: &str, output: Option<&str>) -> Result<()> {
    run_query_inner(ctx, sql, output).await.map_err(|e| {
        match e.downcast::<datafusion::error::DataFusionError>() {
            Ok(df) => root(df),
            Err(e) => e,
        }
    })
}

async fn run_query_inner(ctx: &SessionContext, sql: &str, output: Option<&str>) -> Result<()> {
    let start = Instant::now();
    let df = ctx.sql(sql).await?;
    match output {
        Some(p) => {
            let path = std::path::Path::new(p);
            let opts = DataFrameWriteOptions::new().with_single_file_output(true);
            let batches = match mmnet_arrow::FileFormat::from_path(path, true)? {
                mmnet_arrow::FileFormat::Parquet => df.write_parquet(p, opts, None).await?,
                _ => df.write_csv(p, opts, None).await?,
            };
            let rows: u64 = batches
                .iter()
                .filter_map(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                        .map(|a| a.value(0))
                })
                .sum();
            println!(
                "{rows} rows written to {p} in {:.2} s",
                start.elapsed().as_secs_f64()
            );
        }
        None => {
            let batches = df.collect().await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            println!(
                "{}",
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)?
            );
            println!("{rows} row(s) in {:.3} s", start.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// Runs `mmnet sql`.
pub fn run(a: SqlArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let placement = Placement {
            cluster: a.cluster.clone(),
            storage: mmnet_arrow::sql::StorageOptions::parse(&a.storage_options)?,
        };
        let mut s = session(&a.models, &a.tables, a.precision, &placement).await?;
        match &a.query {
            Some(q) => run_query(&s.ctx, q, a.output.as_deref()).await,
            None => interactive(&mut s).await,
        }
    })
}

/// A prompt like datafusion-cli's: history (in ~/.mmnet_history), statements over several
/// lines until `;`, errors printed without leaving. `\q`, `quit` or Ctrl-D exits;
/// `\reload` loads the models again from their paths.
async fn interactive(s: &mut Session) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut rl = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".mmnet_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    println!(
        "mmnet sql: end statements with `;`, \\q to quit, \\reload to load the models again. Tables: SHOW TABLES;"
    );
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "mmnet> " } else { "   ..> " };
        match rl.readline(prompt) {
            Ok(line) => {
                let t = line.trim();
                if buf.is_empty() && matches!(t, "\\q" | "quit" | "exit") {
                    break;
                }
                if buf.is_empty() && t == "\\reload" {
                    s.reload();
                    continue;
                }
                buf.push_str(&line);
                buf.push('\n');
                if t.ends_with(';') {
                    let stmt = std::mem::take(&mut buf);
                    let _ = rl.add_history_entry(stmt.trim());
                    if let Err(e) = run_query(&s.ctx, stmt.trim().trim_end_matches(';'), None).await
                    {
                        eprintln!("error: {e:#}");
                    }
                }
            }
            Err(ReadlineError::Interrupted) => buf.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}
