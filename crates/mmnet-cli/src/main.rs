//! `mmnet`: train, score, evaluate and benchmark MMNet anomaly detectors.
//!
//! A thin layer: parses arguments and wires `mmnet-core` (the model) to `mmnet-arrow`
//! (tables). Every failure prints one `error:` line naming what is wrong and exits non-zero.

mod cmd_cluster;
mod cmd_eval;
mod cmd_experiment;
mod cmd_explain;
mod cmd_kafka;
mod cmd_produce;
mod cmd_report;
mod cmd_score;
mod cmd_sql;
mod cmd_train;
mod plots;
mod progress;
mod redacting_stderr;
mod security_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the operator allocates per message (payload copies,
/// encoded records), and the allocator was ~12 % of its CPU profile.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Semi-supervised anomaly scoring with MMNet (Masked Memory Network).
#[derive(Debug, Parser)]
#[command(name = "mmnet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--precision`: `f32` or `bf16`.
fn parse_precision(s: &str) -> Result<mmnet_core::kernel::Precision, String> {
    mmnet_core::kernel::Precision::parse(s)
        .ok_or_else(|| format!("`{s}` is not a precision: use f32 or bf16"))
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model on unlabeled rows plus a few labeled anomalies (label = 1).
    Train(cmd_train::TrainArgs),
    /// Score every row of a file; writes the rows with mmnet_score, s_sum, s_kl, is_anomaly.
    Score(cmd_score::ScoreArgs),
    /// AUC-ROC and AUC-PR of every score variant on a labeled file.
    Eval(cmd_eval::EvalArgs),
    /// The paper's protocol end to end: split, train, test, repeated over seeds.
    Experiment(cmd_experiment::ExperimentArgs),
    /// SQL over tables with model functions: SELECT mmnet_score(*) FROM readings.
    Sql(cmd_sql::SqlArgs),
    /// Streaming operator: consume telemetry from Kafka, score, publish scores (and dead letters).
    Kafka(cmd_kafka::KafkaArgs),
    /// Replay a table into a Kafka topic (JSON or Arrow IPC), for demos and benchmarks.
    Produce(cmd_produce::ProduceArgs),
    /// PNG plots (ROC, PR, score distribution, training loss) and an index.html for a model.
    Report(cmd_report::ReportArgs),
    /// Why one record scored as it did: attended memory items and per-feature error.
    Explain(cmd_explain::ExplainArgs),
    /// The processes of an Apache Ballista cluster for `mmnet sql --cluster`: a scheduler
    /// and executors, each with the model functions.
    Cluster(cmd_cluster::ClusterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A cluster process logs what Ballista does (executor registration, each task received),
    // which is how an operator sees where work ran.
    let default_filter = match cli.command {
        Command::Cluster(_) => {
            "warn,mmnet_cluster=info,ballista_scheduler=info,ballista_executor=info"
        }
        _ => "warn,mmnet_kafka=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MMNET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(redacting_stderr::RedactingStderr)
        // Colour codes only on a terminal: logs that land in files stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Train(a) => cmd_train::run(a),
        Command::Score(a) => cmd_score::run(a),
        Command::Eval(a) => cmd_eval::run(a),
        Command::Experiment(a) => cmd_experiment::run(a),
        Command::Sql(a) => cmd_sql::run(a),
        Command::Kafka(a) => cmd_kafka::run(a),
        Command::Produce(a) => cmd_produce::run(a),
        Command::Report(a) => cmd_report::run(a),
        Command::Explain(a) => cmd_explain::run(a),
        Command::Cluster(a) => cmd_cluster::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = format!("{e:#}");
            eprintln!("error: {}", mmnet_kafka::security::redact(&text));
            ExitCode::FAILURE
        }
    }
}
