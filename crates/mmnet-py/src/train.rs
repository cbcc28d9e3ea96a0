//! `mmnet.train` and `mmnet.experiment`: the CLI's `train` and `experiment` over Python data.

use mmnet_arrow::{Dataset, DatasetSpec, TableError};
use mmnet_core::ensemble::Members;
use mmnet_core::experiment::ExperimentDoc;
use mmnet_core::params::MaskStrategy;
use mmnet_core::protocol::{KnownType, ProtocolConfig};
use mmnet_core::scaler::Scaling;
use mmnet_core::train::Silent;
use mmnet_core::{FitOptions, ScoreVariant, TrainData};
use pyo3::prelude::*;

use crate::error::to_py;
use crate::input::Input;
use crate::model::Model;

/// Model and training options, named as `mmnet train`'s flags (`lambda_` for `--lambda`).
#[derive(Debug, Clone, FromPyObject)]
#[pyo3(from_item_all)]
pub struct Options {
    memory_size: usize,
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    score: String,
    lambda_: f64,
    scaling: String,
    mask: String,
    threshold_quantile: f64,
    seed: u64,
    ensemble: String,
    supervised: bool,
}

impl Options {
    fn fit_options(&self) -> Result<FitOptions, String> {
        let score = match self.score.as_str() {
            "auto" => None,
            s => Some(ScoreVariant::from_name(s).ok_or_else(|| {
                let names: Vec<_> = ScoreVariant::ALL.iter().map(|v| v.name()).collect();
                format!("unknown score `{s}` (one of: auto, {})", names.join(", "))
            })?),
        };
        Ok(FitOptions {
            memory_size: self.memory_size,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            score,
            lambda: self.lambda_,
            scaling: Scaling::from_name(&self.scaling).ok_or_else(|| {
                format!("unknown scaling `{}` (one of: auto, minmax)", self.scaling)
            })?,
            mask: MaskStrategy::from_name(&self.mask).ok_or_else(|| {
                format!(
                    "unknown mask strategy `{}` (one of: soft, hard, none)",
                    self.mask
                )
            })?,
            threshold_quantile: self.threshold_quantile,
            seed: self.seed,
            ensemble: Members::parse(&self.ensemble).map_err(|e| e.to_string())?,
            supervised: self.supervised,
        })
    }
}

/// Loads a labeled table from a path or Arrow data.
fn load(input: Input, spec: &DatasetSpec) -> Result<(String, Dataset), TableError> {
    match input {
        Input::File(path) => Ok((
            path.display().to_string(),
            mmnet_arrow::load_dataset(&path, spec)?,
        )),
        arrow => {
            let (source, schema, batches) = arrow.open()?;
            let ds = mmnet_arrow::dataset_from_batches(&source, &schema, batches, spec)?;
            Ok((source.display().to_string(), ds))
        }
    }
}

/// Trains a model on `data`: rows with `label_column` = 1 are the labeled anomalies D_l,
/// every other row is D_u. Options as `mmnet train`'s; the GIL is released while training.
#[pyfunction]
#[pyo3(signature = (data, label_column, exclude, options))]
pub fn train(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    label_column: String,
    exclude: Vec<String>,
    options: Options,
) -> PyResult<Model> {
    let input = Input::from_py(data)?;
    let model = py
        .detach(move || -> Result<mmnet_core::Model, String> {
            let cfg = options
                .fit_options()?
                .fit_config()
                .map_err(|e| e.to_string())?;
            let spec = DatasetSpec {
                label_column: label_column.clone(),
                exclude,
                ..Default::default()
            };
            let (source, ds) = load(input, &spec).map_err(|e| e.to_string())?;
            let (xu, xl) = ds
                .training_parts(source.as_ref(), &label_column)
                .map_err(|e| e.to_string())?;
            mmnet_core::fit(
                TrainData {
                    features: &ds.features,
                    unlabeled: xu.view(),
                    labeled: xl.view(),
                },
                &cfg,
                &mut Silent,
            )
            .map_err(|e| format!("training on {source}: {e}"))
        })
        .map_err(to_py)?;
    Model::new(model)
}

/// The paper's protocol on a labeled table, as `mmnet experiment --json` runs one setting:
/// returns the same JSON document (text). `known_types` runs the known/unknown-type protocol
/// with those anomaly types known (of `type_column`).
#[pyfunction]
#[pyo3(signature = (data, label_column, exclude, type_column, known_types, runs, labeled, contamination, options))]
#[allow(clippy::too_many_arguments)]
pub fn experiment(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    label_column: String,
    exclude: Vec<String>,
    type_column: Option<String>,
    known_types: Option<Vec<i64>>,
    runs: usize,
    labeled: usize,
    contamination: f64,
    options: Options,
) -> PyResult<String> {
    let input = Input::from_py(data)?;
    py.detach(move || -> Result<String, String> {
        if runs == 0 {
            return Err("runs must be at least 1".into());
        }
        if known_types.is_some() && type_column.is_none() {
            return Err(
                "known_types needs type_column (the column holding each anomaly's type)".into(),
            );
        }
        let cfg = options
            .fit_options()?
            .fit_config()
            .map_err(|e| e.to_string())?;
        let spec = DatasetSpec {
            label_column,
            exclude,
            type_column: type_column.clone(),
            features: None,
        };
        let (source, ds) = load(input, &spec).map_err(|e| e.to_string())?;
        let protocol = ProtocolConfig {
            labeled,
            contamination,
            ..Default::default()
        };
        let known = known_types.as_deref().map(|k| KnownType {
            types: ds.types.as_deref().unwrap_or_default(),
            known: k,
        });
        let report = mmnet_core::experiment::run_experiment(
            ds.x.view(),
            &ds.labels,
            &ds.features,
            ds.types.as_deref(),
            known,
            &protocol,
            &cfg,
            runs,
            options.seed,
            &mut Silent,
            &mut |_| {},
        )
        .map_err(|e| e.to_string())?;
        let doc = ExperimentDoc::new(
            source,
            runs,
            options.seed,
            &protocol,
            &cfg,
            type_column,
            known,
            &report,
        );
        serde_json::to_string(&doc).map_err(|e| e.to_string())
    })
    .map_err(to_py)
}
