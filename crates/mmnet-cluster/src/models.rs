//! `--model [NAME=]DIR`, loaded once per process and shared by every session it builds.

use std::path::PathBuf;
use std::sync::Arc;

use mmnet_arrow::sql::SharedModel;
use mmnet_core::kernel::Precision;

use crate::{ClusterError, Result};

/// One `--model [NAME=]DIR` argument: functions `NAME_score`, ... (`mmnet_score`, ... without
/// a name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Function prefix.
    pub name: String,
    /// Model directory.
    pub path: PathBuf,
}

impl ModelSpec {
    /// Parses `NAME=DIR` or `DIR` (name `mmnet`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.split_once('=') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok(ModelSpec {
                name: n.to_string(),
                path: PathBuf::from(p),
            }),
            Some(_) => Err(ClusterError::Config(format!(
                "--model `{s}` must be DIR or NAME=DIR"
            ))),
            None if s.is_empty() => Err(ClusterError::Config("--model is empty".into())),
            None => Ok(ModelSpec {
                name: "mmnet".into(),
                path: PathBuf::from(s),
            }),
        }
    }
}

/// The models of one process, each loaded and digested once.
#[derive(Debug, Clone, Default)]
pub struct LoadedModels {
    /// `(function prefix, model)`, in the order given.
    pub models: Vec<(String, Arc<SharedModel>)>,
}

impl LoadedModels {
    /// Loads every model of `specs` (with `precision` if given).
    pub fn load(specs: &[ModelSpec], precision: Option<Precision>) -> Result<Self> {
        let mut models = Vec::new();
        for spec in specs {
            let err = |cause: String| ClusterError::Model {
                path: spec.path.display().to_string(),
                cause,
            };
            if models.iter().any(|(n, _): &(String, _)| *n == spec.name) {
                return Err(err(format!(
                    "a model is already registered under the name `{}`",
                    spec.name
                )));
            }
            let model = mmnet_core::artifact::load(&spec.path).map_err(|e| err(e.to_string()))?;
            let model = match precision {
                Some(p) => model.with_precision(p),
                None => model,
            };
            let shared = SharedModel::new(model).map_err(|e| err(e.to_string()))?;
            models.push((spec.name.clone(), shared));
        }
        Ok(LoadedModels { models })
    }

    /// `name=digest` for each model, for logs.
    pub fn describe(&self) -> String {
        self.models
            .iter()
            .map(|(n, m)| format!("{n} (sha256 {})", m.digest))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_a_name() {
        assert_eq!(
            ModelSpec::parse("m/dir").expect("dir"),
            ModelSpec {
                name: "mmnet".into(),
                path: "m/dir".into()
            }
        );
        assert_eq!(ModelSpec::parse("v2=m/dir").expect("named").name, "v2");
        assert!(ModelSpec::parse("=m").is_err());
        assert!(ModelSpec::parse("").is_err());
    }
}
