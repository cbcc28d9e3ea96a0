//! Wiring models and tables into a DataFusion session.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use mmnet_core::Model;

use super::udf::{ModelUdf, SharedModel, UdfKind};
use super::wildcard::ExpandModelWildcard;
use crate::error::{Result, TableError};
use crate::format::FileFormat;

/// A DataFusion session as mmnet runs SQL: twice as many partitions as cores.
///
/// The model functions score each batch on the thread that runs its partition (see
/// `udf.rs`), so the cores stay busy only while some partition has a batch ready; with two
/// partitions per core one can decode (or wait for its read) while another scores, and the
/// last row groups of a file spread over more streams. Measured on 1M rows x 122 features
/// over Parquet: docs/BENCHMARKS.md.
pub fn new_session() -> SessionContext {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2 * cores))
}

/// Registers models on a session, each under its own name.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    names: Vec<String>,
    /// UDF name -> model, read by the session's one `*`-expansion rewrite.
    functions: Arc<std::sync::RwLock<HashMap<String, Arc<SharedModel>>>>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl ModelRegistry {
    /// Registers `model` as `<name>_score`, `<name>_s_sum`, `<name>_s_kl` and
    /// `<name>_is_anomaly` (name `mmnet` gives `mmnet_score`, ...), with `*` expansion.
    /// The model is held once in an `Arc` shared by its four functions.
    pub fn register(
        &mut self,
        ctx: &SessionContext,
        name: &str,
        model: Model,
    ) -> Result<Arc<SharedModel>> {
        if !valid_name(name) {
            return Err(TableError::malformed(
                name,
                "a model name must be lowercase letters, digits and _ (not starting with a digit)",
            ));
        }
        if self.names.iter().any(|n| n == name) {
            return Err(TableError::malformed(
                name,
                "a model is already registered under this name",
            ));
        }
        if self.names.is_empty() {
            let mut ctx = ctx.clone();
            ctx.register_function_rewrite(Arc::new(ExpandModelWildcard {
                functions: self.functions.clone(),
            }))
            .map_err(|e| TableError::malformed(name, format!("registering `*` expansion: {e}")))?;
        }
        let shared = self.install(ctx, name, model)?;
        self.names.push(name.to_string());
        Ok(shared)
    }

    /// Replaces the model behind `name`'s functions (`\reload` at the SQL prompt): queries
    /// planned from now on use `model`; one already running keeps the one it was planned
    /// with. Returns the previous model.
    pub fn replace(
        &mut self,
        ctx: &SessionContext,
        name: &str,
        model: Model,
    ) -> Result<Arc<SharedModel>> {
        let key = format!("{name}_{}", UdfKind::ALL[0].suffix());
        let old = self
            .functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
            .ok_or_else(|| TableError::malformed(name, "no model is registered under this name"))?;
        self.install(ctx, name, model)?;
        Ok(old)
    }

    /// Registers `name`'s four functions over `model` (replacing any of the same names).
    fn install(&self, ctx: &SessionContext, name: &str, model: Model) -> Result<Arc<SharedModel>> {
        let digest = mmnet_core::artifact::model_digest(&model)?;
        let shared = Arc::new(SharedModel { model, digest });
        let mut map = self.functions.write().unwrap_or_else(|e| e.into_inner());
        for kind in UdfKind::ALL {
            let udf = ModelUdf::new(name, kind, shared.clone());
            let f = ScalarUDF::new_from_impl(udf);
            map.insert(f.name().to_string(), shared.clone());
            ctx.register_udf(f);
        }
        Ok(shared)
    }

    /// The weights digest of the model behind `name`'s functions.
    pub fn digest(&self, name: &str) -> Option<String> {
        let key = format!("{name}_{}", UdfKind::ALL[0].suffix());
        self.functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .map(|m| m.digest.clone())
    }

    /// Names registered so far.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Registers the file at `path` as table `name`: Parquet and CSV are scanned lazily by
/// DataFusion (projection pushdown, streaming); NPZ is loaded into memory.
pub async fn register_table(ctx: &SessionContext, name: &str, path: &Path) -> Result<()> {
    if !path.exists() {
        return Err(TableError::Io {
            path: path.to_path_buf(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let p = path
        .to_str()
        .ok_or_else(|| TableError::malformed(path, "path is not valid UTF-8"))?;
    let df = |e: datafusion::error::DataFusionError| TableError::malformed(path, e.to_string());
    match FileFormat::from_path(path, false)? {
        FileFormat::Parquet => {
            // DataFusion decodes the footer with the same parquet crate.
            crate::parquet_footer::check(path)?;
            ctx.register_parquet(name, p, ParquetReadOptions::default())
                .await
                .map_err(df)?
        }
        FileFormat::Csv => ctx
            .register_csv(name, p, CsvReadOptions::new().has_header(true))
            .await
            .map_err(df)?,
        FileFormat::Npz => {
            let reader = crate::read::open(path, None, crate::read::DEFAULT_BATCH_ROWS)?;
            // One partition per stream the session runs, batches dealt round robin, so a
            // table loaded into memory is scored on every core like a file is.
            let parts = ctx.state().config().target_partitions().max(1);
            let mut partitions = vec![Vec::new(); parts];
            for (i, b) in reader.batches.enumerate() {
                partitions[i % parts].push(b?);
            }
            let table =
                datafusion::datasource::MemTable::try_new(reader.schema, partitions).map_err(df)?;
            ctx.register_table(name, Arc::new(table)).map_err(df)?;
        }
    }
    Ok(())
}
