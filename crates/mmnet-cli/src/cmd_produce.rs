//! `mmnet produce`: replay a table into a Kafka topic.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mmnet_kafka::OperatorConfig;
use mmnet_kafka::produce::{ProduceFormat, ProduceOptions, produce};

use crate::security_args::SecurityArgs;

/// Arguments of `mmnet produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Table to replay (.parquet, .csv or .npz); every column is sent.
    #[arg(long)]
    pub data: PathBuf,
    /// Bootstrap brokers (default: --config's [kafka] brokers, else localhost:9092).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Destination topic.
    #[arg(long)]
    pub topic: String,
    /// Message format: one JSON object per row, or Arrow IPC streams of --rows-per-message rows.
    #[arg(long, value_enum, default_value = "json")]
    pub format: FormatArg,
    /// Rows per Arrow message.
    #[arg(long, default_value_t = 500)]
    pub rows_per_message: usize,
    /// Rows per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Column used as message key (default: the row number).
    #[arg(long)]
    pub key_column: Option<String>,
    /// Stop after this many rows.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Replay the table this many times.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// The operator's pipeline file: its [security], [librdkafka] and [producer] sections
    /// apply here too (and [kafka] brokers unless --brokers is given).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// TLS and SASL.
    #[command(flatten)]
    pub security: SecurityArgs,
    /// librdkafka property, KEY=VALUE. Repeatable; password-like keys are refused (use
    /// --secret-file).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub librdkafka: Vec<String>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// JSON objects.
    Json,
    /// Arrow IPC streams.
    Arrow,
}

/// Produces the table and prints what was sent.
pub fn run(a: ProduceArgs) -> Result<()> {
    if matches!(a.rate, Some(r) if !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of rows per second");
    }
    // The operator's file, so that one file describes how to reach the cluster.
    let mut file = match &a.config {
        Some(p) => OperatorConfig::from_file(p)?,
        None => OperatorConfig::default(),
    };
    a.security.apply(&mut file.security)?;
    for kv in &a.librdkafka {
        file.set_librdkafka(kv)?;
    }
    let props = file
        .librdkafka
        .iter()
        .chain(&file.producer)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let opts = ProduceOptions {
        data: a.data,
        brokers: a.brokers.unwrap_or(file.kafka.brokers),
        security: file.security,
        topic: a.topic,
        format: match a.format {
            FormatArg::Json => ProduceFormat::Json,
            FormatArg::Arrow => ProduceFormat::Arrow,
        },
        rows_per_message: a.rows_per_message.max(1),
        rate: a.rate,
        key_column: a.key_column,
        limit: a.limit,
        repeat: a.repeat,
        librdkafka: props,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let s = rt.block_on(produce(&opts))?;
    println!(
        "produced {} rows in {} messages to {} in {:.2} s ({:.0} rows/s)",
        s.rows,
        s.messages,
        opts.topic,
        s.seconds,
        s.rows as f64 / s.seconds.max(1e-9)
    );
    Ok(())
}
