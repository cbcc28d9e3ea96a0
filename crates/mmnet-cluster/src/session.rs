//! Session states with mmnet's functions, for the scheduler and executors, and the client's
//! session on a cluster.

use std::path::Path;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::config::BALLISTA_SCHEDULER_MAX_PARTITIONS_PER_TASK;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use mmnet_arrow::sql::store::runtime_env;
use mmnet_arrow::sql::{ModelRegistry, StorageOptions};

use crate::models::LoadedModels;
use crate::{ClusterError, Result};

/// A Ballista session state (Ballista's functions and optimizer rules, as its own
/// `default_session_builder` makes) with `models`' functions and `*` rewrite, and object
/// stores from `storage`: what the scheduler plans with and what an executor's function
/// registry is taken from.
pub fn model_state(
    config: SessionConfig,
    models: &LoadedModels,
    storage: &StorageOptions,
    work_dir: Option<&Path>,
) -> Result<SessionState> {
    use ballista_core::extension::{
        ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
    };
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime_env(storage, work_dir)?)
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .with_scalar_functions(ballista_scalar_functions())
        .with_aggregate_functions(ballista_aggregate_functions())
        .with_window_functions(ballista_window_functions())
        .build();
    let ctx = SessionContext::new_with_state(state);
    let mut registry = ModelRegistry::default();
    for (name, model) in &models.models {
        registry.register_shared(&ctx, name, model.clone())?;
    }
    Ok(ctx.state())
}

/// A client session on the cluster whose scheduler listens at `url` (`df://HOST:PORT`),
/// reading object stores with `storage`. Register models and tables on the context it
/// returns: Ballista's upgrade of a state keeps the functions of the state it starts from
/// only partly (docs of ballista 55), so nothing is registered before it.
pub async fn remote_session(url: &str, storage: &StorageOptions) -> Result<SessionContext> {
    if !url.starts_with("df://") {
        return Err(ClusterError::Config(format!(
            "--cluster `{url}`: expected df://HOST:PORT (the scheduler's address)"
        )));
    }
    // One input partition per task. Left unbounded, Ballista's scheduler packs as many
    // partitions into one task as the executor has free slots, and those run on one task
    // of the executor's runtime: scoring is CPU-bound inside the stream's poll, so a
    // 2-slot executor scored on one core (measured by benches/cluster.sh: its tasks ran one
    // after another, 1.55x the local time). One partition per task lets the executor's
    // slots run tasks side by side.
    let config =
        SessionConfig::new_with_ballista().set_usize(BALLISTA_SCHEDULER_MAX_PARTITIONS_PER_TASK, 1);
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime_env(storage, None)?)
        .build();
    Ok(SessionContext::remote_with_state(url, state).await?)
}
