//! `mmnet kafka`: the streaming operator (see `mmnet_kafka::operator`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mmnet_kafka::config::{Guarantee, InputFormat, OutputFormat};
use mmnet_kafka::{Metrics, MetricsServer, OperatorConfig};

use crate::security_args::SecurityArgs;

/// Arguments of `mmnet kafka`. Flags override the `--config` file, which overrides defaults.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Model directory written by `mmnet train`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT...].
    #[arg(long)]
    pub brokers: Option<String>,
    /// Telemetry topic to consume.
    #[arg(long)]
    pub input_topic: Option<String>,
    /// Topic for score records.
    #[arg(long)]
    pub output_topic: Option<String>,
    /// Consumer group (instances in one group share partitions).
    #[arg(long)]
    pub group: Option<String>,
    /// Dead-letter topic for records that cannot be scored.
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Pipeline configuration (TOML); see --print-config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// librdkafka property for consumer and producer, KEY=VALUE. Repeatable; password-like
    /// keys are refused (use --secret-file or ${VAR} in --config).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub librdkafka: Vec<String>,
    /// TLS and SASL ([security]).
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Seconds without a reachable broker before exiting non-zero (0 = wait forever;
    /// [kafka] unavailable_timeout_s).
    #[arg(long, value_name = "S")]
    pub unavailable_timeout: Option<u64>,
    /// Delivery guarantee.
    #[arg(long, value_enum)]
    pub guarantee: Option<GuaranteeArg>,
    /// Input payload format.
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormatArg>,
    /// Score record format.
    #[arg(long, value_enum)]
    pub output_format: Option<OutputFormatArg>,
    /// Override the model's threshold for is_anomaly.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Reload the model when what --model names changes (a symlink flipped, a directory
    /// replaced by rename); SIGHUP reloads either way ([model] watch).
    #[arg(long)]
    pub watch_model: bool,
    /// Score every record with this model too: a `shadow` object in each score record
    /// ([model] shadow_path).
    #[arg(long, value_name = "DIR")]
    pub shadow_model: Option<PathBuf>,
    /// Arithmetic of the scoring products, f32 or bf16 ([model] precision; default: the
    /// model's manifest).
    #[arg(long, value_parser = crate::parse_precision)]
    pub precision: Option<mmnet_core::kernel::Precision>,
    /// Defaults for batching, fetching and producing: throughput (the default) or
    /// low-latency (profile = ...; whatever the file or -X sets wins over it).
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// Add an `explain` object (attended memory items, top error features) to every JSON
    /// score record (= `[output] explain = true`).
    #[arg(long)]
    pub explain: bool,
    /// Address for /metrics and /health ("" disables).
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Print the default configuration, every field commented, and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// `--guarantee`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GuaranteeArg {
    /// Offsets committed after outputs are acknowledged.
    AtLeastOnce,
    /// Outputs and offsets in one transaction per batch.
    ExactlyOnce,
}

/// `--input-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InputFormatArg {
    /// Detect per message.
    Auto,
    /// JSON objects.
    Json,
    /// Arrow IPC streams.
    Arrow,
}

/// `--profile`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    /// Records/s first: batches of up to 1024 messages lingering 20 ms.
    Throughput,
    /// Latency first: no lingering, 10 ms fetch waits, producer linger.ms = 0.
    LowLatency,
}

/// `--output-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormatArg {
    /// JSON score records.
    Json,
    /// Arrow IPC streams.
    Arrow,
}

fn config(a: KafkaArgs) -> Result<OperatorConfig> {
    let profile = a.profile.map(|p| match p {
        ProfileArg::Throughput => mmnet_kafka::Profile::Throughput,
        ProfileArg::LowLatency => mmnet_kafka::Profile::LowLatency,
    });
    let mut c = match &a.config {
        Some(p) => OperatorConfig::from_file_with_profile(p, profile)?,
        None => OperatorConfig::from_toml_with_profile("", profile)?,
    };
    if let Some(v) = a.model {
        c.model.path = Some(v);
    }
    if let Some(v) = a.brokers {
        c.kafka.brokers = v;
    }
    if let Some(v) = a.input_topic {
        c.kafka.input_topic = v;
    }
    if let Some(v) = a.output_topic {
        c.kafka.output_topic = v;
    }
    if let Some(v) = a.group {
        c.kafka.group = v;
    }
    if let Some(v) = a.dlq_topic {
        c.kafka.dlq_topic = Some(v);
    }
    if let Some(v) = a.threshold {
        c.model.threshold = Some(v);
    }
    if a.explain {
        c.output.explain = true;
    }
    if a.watch_model {
        c.model.watch = true;
    }
    if let Some(v) = a.shadow_model {
        c.model.shadow_path = Some(v);
    }
    if let Some(v) = a.precision {
        c.model.precision = Some(v);
    }
    if let Some(v) = a.metrics_listen {
        c.metrics.listen = v;
    }
    if let Some(v) = a.guarantee {
        c.delivery.guarantee = match v {
            GuaranteeArg::AtLeastOnce => Guarantee::AtLeastOnce,
            GuaranteeArg::ExactlyOnce => Guarantee::ExactlyOnce,
        };
    }
    if let Some(v) = a.input_format {
        c.input.format = match v {
            InputFormatArg::Auto => InputFormat::Auto,
            InputFormatArg::Json => InputFormat::Json,
            InputFormatArg::Arrow => InputFormat::Arrow,
        };
    }
    if let Some(v) = a.output_format {
        c.output.format = match v {
            OutputFormatArg::Json => OutputFormat::Json,
            OutputFormatArg::Arrow => OutputFormat::Arrow,
        };
    }
    for kv in &a.librdkafka {
        c.set_librdkafka(kv)?;
    }
    a.security.apply(&mut c.security)?;
    if let Some(v) = a.unavailable_timeout {
        c.kafka.unavailable_timeout_s = v;
    }
    c.validate()?;
    Ok(c)
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the operator until SIGINT/SIGTERM or a fatal error.
pub fn run(a: KafkaArgs) -> Result<()> {
    if a.print_config {
        print!("{}", OperatorConfig::template());
        return Ok(());
    }
    let cfg = config(a)?;
    let metrics = Metrics::new();
    let _server = if cfg.metrics.listen.is_empty() {
        None
    } else {
        let s = MetricsServer::start(&cfg.metrics.listen, metrics.clone())?;
        tracing::info!(addr = %s.addr, "metrics on /metrics, health on /health");
        Some(s)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = rt.block_on(mmnet_kafka::run(cfg, metrics, shutdown_signal()))?;
    eprintln!(
        "mmnet kafka: stopped; {} messages, {} scores ({} anomalies), {} dead letters",
        summary.messages, summary.scores, summary.anomalies, summary.dead_letters
    );
    Ok(())
}
