//! `mmnet cluster scheduler|executor`: the processes of an Apache DataFusion Ballista cluster
//! that runs mmnet's SQL (`mmnet sql --cluster df://HOST:PORT`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mmnet_arrow::sql::StorageOptions;
use mmnet_cluster::{ExecutorOptions, LoadedModels, ModelSpec, SchedulerOptions};
use mmnet_core::kernel::Precision;

/// Arguments of `mmnet cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub role: Role,
}

/// Which process to run.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// A Ballista scheduler with mmnet's model functions: plans queries, hands tasks to
    /// executors. Clients connect with `mmnet sql --cluster df://HOST:PORT`.
    Scheduler(SchedulerArgs),
    /// A Ballista executor with mmnet's model functions: runs the tasks a scheduler hands out.
    Executor(ExecutorArgs),
}

/// What every process of the cluster is given.
#[derive(Debug, Args)]
pub struct Common {
    /// Model: `DIR` (functions mmnet_score, ...) or `NAME=DIR` (NAME_score, ...). Repeatable.
    /// Every process loads the model from a directory it can read; a query planned with
    /// another model version (another digest) is refused.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Arithmetic of the scoring products, f32 or bf16 (default: each model's manifest).
    #[arg(long, value_parser = crate::parse_precision)]
    pub precision: Option<Precision>,
    /// Object-store setting KEY=VALUE for s3:// tables (endpoint, region, allow_http,
    /// virtual_hosted_style_request, ...). Credentials come from the AWS environment.
    #[arg(long = "storage-option")]
    pub storage_options: Vec<String>,
}

impl Common {
    fn models(&self) -> Result<LoadedModels> {
        let specs = self
            .models
            .iter()
            .map(|m| ModelSpec::parse(m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LoadedModels::load(&specs, self.precision)?)
    }
}

/// Arguments of `mmnet cluster scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    #[command(flatten)]
    pub common: Common,
    /// Address of the scheduler's gRPC service.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: SocketAddr,
    /// Host name executors and clients reach the scheduler by (default: the bind IP).
    #[arg(long)]
    pub external_host: Option<String>,
}

/// Arguments of `mmnet cluster executor`.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    #[command(flatten)]
    pub common: Common,
    /// The scheduler, HOST:PORT.
    #[arg(long)]
    pub scheduler: String,
    /// Address of the executor's gRPC service; the host is also where its Flight service
    /// listens.
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub bind: SocketAddr,
    /// Port of the executor's Arrow Flight service (results and shuffle data).
    #[arg(long, default_value_t = 50051)]
    pub flight_port: u16,
    /// Host name other processes reach this executor by (default: the bind IP).
    #[arg(long)]
    pub external_host: Option<String>,
    /// Directory for shuffle files and spills (default: a new one under the temp dir).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once (default: the number of cores).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

fn split_host_port(s: &str) -> Result<(String, u16)> {
    let (h, p) = s
        .rsplit_once(':')
        .with_context(|| format!("--scheduler `{s}` must be HOST:PORT"))?;
    let port = p
        .parse()
        .with_context(|| format!("--scheduler `{s}`: `{p}` is not a port"))?;
    anyhow::ensure!(!h.is_empty(), "--scheduler `{s}` must be HOST:PORT");
    Ok((h.to_string(), port))
}

/// Runs `mmnet cluster`.
pub fn run(a: ClusterArgs) -> Result<()> {
    // Ballista's services and DataFusion's plans recurse deeply: the stack size its own
    // binaries use.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()?;
    rt.block_on(async {
        match a.role {
            Role::Scheduler(s) => {
                let models = s.common.models()?;
                let storage = StorageOptions::parse(&s.common.storage_options)?;
                eprintln!(
                    "mmnet scheduler listening on {} (models: {})",
                    s.bind,
                    models.describe()
                );
                mmnet_cluster::scheduler(SchedulerOptions {
                    bind: s.bind,
                    external_host: s.external_host,
                    models,
                    storage,
                })
                .await?;
            }
            Role::Executor(e) => {
                let models = e.common.models()?;
                let storage = StorageOptions::parse(&e.common.storage_options)?;
                let (scheduler_host, scheduler_port) = split_host_port(&e.scheduler)?;
                anyhow::ensure!(
                    e.bind.port() != e.flight_port,
                    "--bind port and --flight-port must differ (both are {})",
                    e.flight_port
                );
                anyhow::ensure!(e.concurrency != Some(0), "--concurrency must be at least 1");
                eprintln!(
                    "mmnet executor: grpc {}, flight port {}, scheduler {} (models: {})",
                    e.bind,
                    e.flight_port,
                    e.scheduler,
                    models.describe()
                );
                mmnet_cluster::executor(ExecutorOptions {
                    scheduler_host,
                    scheduler_port,
                    bind_host: e.bind.ip().to_string(),
                    external_host: e.external_host,
                    flight_port: e.flight_port,
                    grpc_port: e.bind.port(),
                    work_dir: e.work_dir,
                    concurrency: e.concurrency,
                    models,
                    storage,
                })
                .await?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses() {
        assert_eq!(
            split_host_port("10.0.0.5:50050").expect("ok"),
            ("10.0.0.5".to_string(), 50050)
        );
        assert!(split_host_port("host").is_err());
        assert!(split_host_port(":1").is_err());
        assert!(split_host_port("h:x").is_err());
    }
}
