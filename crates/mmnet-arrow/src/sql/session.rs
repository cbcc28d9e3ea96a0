//! Wiring models and tables into a DataFusion session.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use mmnet_core::Model;

use super::store::{StorageOptions, is_url, runtime_env};
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
    SessionContext::new_with_config(session_config())
}

/// [`new_session`] reading and writing object stores with `options`.
pub fn new_session_with(options: &StorageOptions) -> Result<SessionContext> {
    Ok(SessionContext::new_with_config_rt(
        session_config(),
        runtime_env(options, None)?,
    ))
}

/// Two partitions per core (see [`new_session`]).
fn session_config() -> SessionConfig {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    SessionConfig::new().with_target_partitions(2 * cores)
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
        let shared = SharedModel::new(model)?;
        self.register_shared(ctx, name, shared.clone())?;
        Ok(shared)
    }

    /// [`Self::register`] with a model already loaded and shared, as a cluster process does
    /// for every session it builds.
    pub fn register_shared(
        &mut self,
        ctx: &SessionContext,
        name: &str,
        shared: Arc<SharedModel>,
    ) -> Result<()> {
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
        self.install(ctx, name, shared);
        self.names.push(name.to_string());
        Ok(())
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
        self.install(ctx, name, SharedModel::new(model)?);
        Ok(old)
    }

    /// Registers `name`'s four functions over `model` (replacing any of the same names).
    fn install(&self, ctx: &SessionContext, name: &str, shared: Arc<SharedModel>) {
        let mut map = self.functions.write().unwrap_or_else(|e| e.into_inner());
        for kind in UdfKind::ALL {
            let udf = ModelUdf::new(name, kind, shared.clone());
            let f = ScalarUDF::new_from_impl(udf);
            map.insert(f.name().to_string(), shared.clone());
            ctx.register_udf(f);
        }
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

/// Whether the table at `location` is loaded into this process's memory (NPZ), and so
/// cannot be scanned by other processes (a cluster's executors).
pub fn loads_into_memory(location: &str) -> bool {
    !is_url(location)
        && matches!(
            FileFormat::from_path(Path::new(location), false),
            Ok(FileFormat::Npz)
        )
}

/// Registers the table at `location` as `name`.
///
/// `location` is a local file (.parquet, .csv, .npz), a local directory, or an object-store
/// URL (`s3://bucket/prefix/`, `file:///...`) naming one file or a prefix. Parquet and CSV are
/// scanned lazily by DataFusion (projection pushdown, streaming); NPZ is loaded into memory.
/// A directory or prefix is one table of every `.parquet` file under it (or `.csv`, when its
/// name says so: `name.csv/`), with hive-style partitions (`day=2026-11-30/`) as columns.
pub async fn register_table(ctx: &SessionContext, name: &str, location: &str) -> Result<()> {
    let df = |e: datafusion::error::DataFusionError| TableError::malformed(location, e.to_string());
    if is_url(location) {
        return register_listing(ctx, name, location).await.map_err(df);
    }
    let path = Path::new(location);
    if !path.exists() {
        return Err(TableError::Io {
            path: path.to_path_buf(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        });
    }
    // Absolute, so that other processes (a cluster's executors) read the same file.
    let abs = std::path::absolute(path).map_err(|cause| TableError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let p = abs
        .to_str()
        .ok_or_else(|| TableError::malformed(path, "path is not valid UTF-8"))?;
    if abs.is_dir() {
        let ext = dir_extension(p);
        let mut files = Vec::new();
        collect_files(&abs, ext, &mut files)?;
        if files.is_empty() {
            return Err(TableError::malformed(
                path,
                format!("the directory holds no {ext} file (searched its subdirectories too)"),
            ));
        }
        if ext == ".parquet" {
            for f in &files {
                crate::parquet_footer::check(f)?;
            }
        }
        let dir = format!("{}/", p.trim_end_matches('/'));
        return register_listing(ctx, name, &dir).await.map_err(df);
    }
    match FileFormat::from_path(path, false)? {
        FileFormat::Parquet => {
            // DataFusion decodes the footer with the same parquet crate.
            crate::parquet_footer::check(&abs)?;
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

/// The file extension a directory or prefix table is made of: `.csv` when the directory's
/// own name ends in `.csv`, Parquet otherwise.
fn dir_extension(location: &str) -> &'static str {
    if location
        .trim_end_matches('/')
        .to_ascii_lowercase()
        .ends_with(".csv")
    {
        ".csv"
    } else {
        ".parquet"
    }
}

/// Every file under `dir` (recursively) whose name ends in `ext`.
fn collect_files(dir: &Path, ext: &str, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let io = |cause| TableError::Io {
        path: dir.to_path_buf(),
        cause,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.is_dir() {
            collect_files(&p, ext, out)?;
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.to_ascii_lowercase().ends_with(ext))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Registers a file or a directory/prefix through a DataFusion listing table: schema from
/// the files, hive-style partition columns from the paths.
async fn register_listing(
    ctx: &SessionContext,
    name: &str,
    location: &str,
) -> datafusion::common::Result<()> {
    use datafusion::datasource::file_format::csv::CsvFormat;
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    // A name with a table file's extension is one object; anything else is a prefix.
    let (is_file, ext) = match FileFormat::from_path(Path::new(location), false) {
        Ok(FileFormat::Parquet) => (true, ""),
        Ok(FileFormat::Csv) => (true, ".csv"),
        Ok(FileFormat::Npz) => {
            return datafusion::common::plan_err!(
                "{location}: NPZ tables are read from local files only; convert it to Parquet"
            );
        }
        Err(_) => (false, dir_extension(location)),
    };
    // A prefix without the trailing slash would be taken for one object.
    let location = if is_file || location.ends_with('/') {
        location.to_string()
    } else {
        format!("{location}/")
    };
    let url = ListingTableUrl::parse(&location)?;
    let state = ctx.state();
    let options = if ext == ".csv" {
        ListingOptions::new(Arc::new(CsvFormat::default().with_has_header(true)))
            .with_file_extension(".csv")
    } else {
        ListingOptions::new(Arc::new(
            ParquetFormat::default().with_options(state.table_options().parquet.clone()),
        ))
        .with_file_extension(if is_file { "" } else { ".parquet" })
    };
    let config = ListingTableConfig::new(url).with_listing_options(options);
    let config = if is_file {
        config
    } else {
        config.infer_partitions_from_path(&state).await?
    };
    let config = config.infer_schema(&state).await?;
    if config
        .file_schema
        .as_ref()
        .is_none_or(|s| s.fields().is_empty())
    {
        return datafusion::common::plan_err!(
            "{location}: no {} file found",
            if ext.is_empty() { ".parquet" } else { ext }
        );
    }
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// Whether `location` is read through DataFusion (an object-store URL or a directory of
/// files) rather than by mmnet's own single-file readers.
pub fn reads_through_datafusion(location: &str) -> bool {
    is_url(location) || Path::new(location).is_dir()
}

/// The rows of the table at `location` (see [`register_table`]) as one stream, read in
/// bounded memory; registered on `ctx` as `__mmnet_input`.
pub async fn read_table(
    ctx: &SessionContext,
    location: &str,
) -> Result<datafusion::execution::SendableRecordBatchStream> {
    const NAME: &str = "__mmnet_input";
    register_table(ctx, NAME, location).await?;
    let df = |e: datafusion::error::DataFusionError| TableError::malformed(location, e.to_string());
    ctx.table(NAME)
        .await
        .map_err(df)?
        .execute_stream()
        .await
        .map_err(df)
}
