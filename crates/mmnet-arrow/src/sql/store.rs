//! Object storage: `s3://bucket/prefix/` (and `file://`) tables, read and written through the
//! `object_store` crate DataFusion already uses.
//!
//! Credentials come from the usual AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`, ... as
//! `AmazonS3Builder::from_env` reads them); `--storage-option key=value` adds the settings an
//! S3-compatible store needs (endpoint, region, path-style access, plain HTTP), by the names
//! `object_store` gives them. Secrets are refused on the command line, where `ps` shows them.
//!
//! Which buckets a query touches is only known once it is planned (and, on a cluster, on
//! every process that plans or runs a part of it), so stores are made on first use by one
//! [`StoreRegistry`] per process, not registered per table.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use url::Url;

use crate::error::{Result, TableError};

/// Settings for S3-compatible stores, from `--storage-option key=value`.
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    /// `(key as given, value)`, validated against `object_store`'s S3 keys.
    pairs: Vec<(String, String)>,
}

/// Keys whose value is a credential: never on a command line.
const SECRET_KEYS: [AmazonS3ConfigKey; 3] = [
    AmazonS3ConfigKey::SecretAccessKey,
    AmazonS3ConfigKey::Token,
    AmazonS3ConfigKey::AccessKeyId,
];

impl StorageOptions {
    /// Parses `key=value` items; an unknown key or a credential is an error naming it.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self> {
        let mut pairs = Vec::new();
        for item in items {
            let item = item.as_ref();
            let (k, v) = item.split_once('=').ok_or_else(|| {
                TableError::malformed("--storage-option", format!("`{item}` must be KEY=VALUE"))
            })?;
            let key = AmazonS3ConfigKey::from_str(k.trim()).map_err(|_| {
                TableError::malformed(
                    "--storage-option",
                    format!(
                        "unknown key `{k}` (S3 keys as object_store names them: endpoint, region, \
                         allow_http, virtual_hosted_style_request, skip_signature, ...)"
                    ),
                )
            })?;
            if SECRET_KEYS.contains(&key) {
                return Err(TableError::malformed(
                    "--storage-option",
                    format!(
                        "`{k}` is a credential: set it in the environment (AWS_ACCESS_KEY_ID, \
                         AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), not on the command line"
                    ),
                ));
            }
            pairs.push((k.trim().to_string(), v.to_string()));
        }
        Ok(StorageOptions { pairs })
    }

    /// The options as given (`key`, `value`), for passing to another process.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// An S3 store for `bucket`: the environment first, then these options.
    fn s3(&self, bucket: &str) -> object_store::Result<Arc<dyn ObjectStore>> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in &self.pairs {
            // Validated in `parse`.
            if let Ok(key) = AmazonS3ConfigKey::from_str(k) {
                b = b.with_config(key, v);
            }
        }
        Ok(Arc::new(b.build()?))
    }
}

/// DataFusion's default registry (local files, stores registered by hand) plus S3 stores
/// made on first use of a bucket and kept for the process's life.
#[derive(Debug)]
pub struct StoreRegistry {
    inner: DefaultObjectStoreRegistry,
    options: StorageOptions,
    made: std::sync::Mutex<()>,
}

impl StoreRegistry {
    /// A registry that builds S3 stores with `options`.
    pub fn new(options: StorageOptions) -> Self {
        StoreRegistry {
            inner: DefaultObjectStoreRegistry::new(),
            options,
            made: std::sync::Mutex::new(()),
        }
    }
}

impl ObjectStoreRegistry for StoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(s) = self.inner.get_store(url) {
            return Ok(s);
        }
        match url.scheme() {
            "s3" | "s3a" => {
                // One store per bucket even when several partitions ask at once.
                let _g = self.made.lock().unwrap_or_else(|e| e.into_inner());
                if let Ok(s) = self.inner.get_store(url) {
                    return Ok(s);
                }
                let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
                    DataFusionError::Configuration(format!("{url}: no bucket in the URL"))
                })?;
                let store = self.options.s3(bucket).map_err(|e| {
                    DataFusionError::Configuration(format!("{url}: object store: {e}"))
                })?;
                self.inner.register_store(url, store.clone());
                Ok(store)
            }
            other => Err(DataFusionError::Configuration(format!(
                "{url}: unsupported storage scheme `{other}://` (mmnet reads local paths, \
                 file:// and s3://)"
            ))),
        }
    }
}

/// A runtime whose object stores come from a [`StoreRegistry`] with `options`, spilling
/// under `spill_dir` if given (a cluster executor's work directory).
pub fn runtime_env(
    options: &StorageOptions,
    spill_dir: Option<&std::path::Path>,
) -> Result<Arc<RuntimeEnv>> {
    let mut b = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(StoreRegistry::new(options.clone())));
    if let Some(d) = spill_dir {
        b = b.with_temp_file_path(d);
    }
    b.build_arc()
        .map_err(|e| TableError::malformed("runtime", e.to_string()))
}

/// Whether `location` names an object-store URL (`s3://...`, `file://...`) rather than a
/// local path.
pub fn is_url(location: &str) -> bool {
    match location.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_and_credentials_refused() {
        let o = StorageOptions::parse(&["endpoint=http://127.0.0.1:9000", "allow_http=true"])
            .expect("valid");
        assert_eq!(o.pairs().len(), 2);
        let e = StorageOptions::parse(&["colour=blue"]).expect_err("unknown key");
        assert!(e.to_string().contains("unknown key `colour`"), "{e}");
        let e = StorageOptions::parse(&["secret_access_key=hunter2"]).expect_err("secret");
        assert!(e.to_string().contains("credential"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = StorageOptions::parse(&["endpoint"]).expect_err("no =");
        assert!(e.to_string().contains("KEY=VALUE"), "{e}");
    }

    #[test]
    fn urls_and_paths() {
        assert!(is_url("s3://bucket/prefix/"));
        assert!(is_url("file:///tmp/x.parquet"));
        assert!(!is_url("/tmp/x.parquet"));
        assert!(!is_url("data/x.parquet"));
        assert!(!is_url("c:/x"));
    }

    #[test]
    fn unknown_schemes_are_refused_by_name() {
        let r = StoreRegistry::new(StorageOptions::default());
        let e = r
            .get_store(&Url::parse("gopher://host/x").expect("url"))
            .expect_err("gopher");
        assert!(e.to_string().contains("gopher://"), "{e}");
        // Local files are always there.
        assert!(
            r.get_store(&Url::parse("file:///tmp").expect("url"))
                .is_ok()
        );
    }
}
