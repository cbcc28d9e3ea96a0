//! `mmnet cluster scheduler` and `mmnet cluster executor`: Ballista's processes, started
//! through `start_server` and `start_executor_process`, with mmnet's functions and stores.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::start_server;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionConfig;
use mmnet_arrow::sql::StorageOptions;

use ballista::prelude::SessionConfigExt;

use crate::models::LoadedModels;
use crate::session::model_state;
use crate::{ClusterError, Result};

/// How to run a scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address of its gRPC service (clients and executors connect here).
    pub bind: SocketAddr,
    /// Host name executors and clients use to reach it (default: the bind address's IP).
    pub external_host: Option<String>,
    /// The models it plans with.
    pub models: LoadedModels,
    /// Object-store settings (listing files while planning).
    pub storage: StorageOptions,
}

/// Runs a scheduler until the process is stopped.
pub async fn scheduler(o: SchedulerOptions) -> Result<()> {
    let models = o.models.clone();
    let storage = o.storage.clone();
    let builder = Arc::new(move |config: SessionConfig| {
        model_state(config, &models, &storage, None)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    });
    let mut config = SchedulerConfig::default()
        .with_override_config_producer(Arc::new(SessionConfig::new_with_ballista))
        .with_override_session_builder(builder)
        // Scoring is the same work per row wherever it runs: spread a stage's tasks over
        // every executor rather than filling the first one's slots (Ballista's default).
        .with_task_distribution(TaskDistributionPolicy::RoundRobin);
    config.bind_host = o.bind.ip().to_string();
    config.bind_port = o.bind.port();
    config.external_host = o.external_host.unwrap_or_else(|| o.bind.ip().to_string());
    tracing::info!(
        "mmnet scheduler on {} with models: {}",
        o.bind,
        o.models.describe()
    );
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, o.bind, Arc::new(config)).await?;
    Ok(())
}

/// How to run an executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's host and gRPC port.
    pub scheduler_host: String,
    /// The scheduler's gRPC port.
    pub scheduler_port: u16,
    /// Host to bind (flight and gRPC services).
    pub bind_host: String,
    /// Host name other processes use to fetch this executor's results (default: bind host).
    pub external_host: Option<String>,
    /// Arrow Flight port: results and shuffle data are fetched from here.
    pub flight_port: u16,
    /// gRPC port of the executor's own service.
    pub grpc_port: u16,
    /// Directory for shuffle files and spills (default: a new temporary directory).
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once (default: the number of cores).
    pub concurrency: Option<usize>,
    /// The models it scores with.
    pub models: LoadedModels,
    /// Object-store settings (reading table files, writing output).
    pub storage: StorageOptions,
}

/// Runs an executor until the process is stopped.
pub async fn executor(o: ExecutorOptions) -> Result<()> {
    let work_dir = o.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mmnet-executor-{}", std::process::id()))
    });
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| ClusterError::Config(format!("work dir {}: {e}", work_dir.display())))?;
    let state = model_state(
        SessionConfig::new_with_ballista(),
        &o.models,
        &o.storage,
        Some(&work_dir),
    )?;
    let registry = BallistaFunctionRegistry::from(&state);
    let storage = o.storage.clone();
    let wd = work_dir.clone();
    let runtime_producer = Arc::new(move |_: &SessionConfig| {
        mmnet_arrow::sql::store::runtime_env(&storage, Some(&wd))
            .map_err(|e| DataFusionError::External(Box::new(e)))
    });
    let wd_text = work_dir
        .to_str()
        .ok_or_else(|| ClusterError::Config(format!("{}: not UTF-8", work_dir.display())))?
        .to_string();
    let config = ExecutorProcessConfig {
        bind_host: o.bind_host.clone(),
        external_host: o.external_host.clone(),
        port: o.flight_port,
        grpc_port: o.grpc_port,
        scheduler_host: o.scheduler_host.clone(),
        scheduler_port: o.scheduler_port,
        vcores: o
            .concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        work_dir: Some(wd_text),
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(runtime_producer),
        override_config_producer: Some(Arc::new(SessionConfig::new_with_ballista)),
        ..Default::default()
    };
    tracing::info!(
        "mmnet executor (flight {}:{}, grpc {}) for scheduler {}:{}, work dir {}, models: {}",
        o.bind_host,
        o.flight_port,
        o.grpc_port,
        o.scheduler_host,
        o.scheduler_port,
        work_dir.display(),
        o.models.describe()
    );
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}
