//! `mmnet.Model`: a trained model, its metadata, and scoring over Arrow.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::pyarrow::{IntoPyArrow, Table};
use mmnet_arrow::TableError;
use mmnet_arrow::features::{batch_features, check_feature_columns, value_slices};
use mmnet_arrow::write::{append_scores, scored_schema};
use mmnet_core::artifact;
use mmnet_core::kernel::Threads;
use pyo3::prelude::*;

use crate::error::to_py;
use crate::input::Input;

/// A trained MMNet model (the same artifact as the CLI's: `manifest.json` +
/// `weights.safetensors`).
#[pyclass(module = "mmnet._mmnet", frozen)]
#[derive(Debug)]
pub struct Model {
    inner: Arc<mmnet_core::Model>,
    digest: String,
}

impl Model {
    /// Wraps a model, computing its digest once.
    pub fn new(model: mmnet_core::Model) -> PyResult<Model> {
        let digest = artifact::model_digest(&model).map_err(to_py)?;
        Ok(Model {
            inner: Arc::new(model),
            digest,
        })
    }
}

#[pymethods]
impl Model {
    /// Loads a model directory (or its manifest.json), checking format and weights digest.
    /// `precision` ("f32" or "bf16") overrides the scoring precision stored in the manifest.
    #[staticmethod]
    #[pyo3(signature = (path, precision = None))]
    fn load(py: Python<'_>, path: PathBuf, precision: Option<&str>) -> PyResult<Model> {
        let precision = match precision {
            None => None,
            Some(p) => Some(mmnet_core::kernel::Precision::parse(p).ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "precision `{p}` is not one of f32, bf16"
                ))
            })?),
        };
        let model = py.detach(|| artifact::load(&path)).map_err(to_py)?;
        Model::new(match precision {
            Some(p) => model.with_precision(p),
            None => model,
        })
    }

    /// Arithmetic of the scoring products: "f32" or "bf16".
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision.as_str()
    }

    /// Writes the model to directory `path` (created if needed).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| artifact::save(&self.inner, &path))
            .map(|_| ())
            .map_err(to_py)
    }

    /// Feature columns the model reads, in order.
    #[getter]
    fn features(&self) -> Vec<String> {
        self.inner.features.clone()
    }

    /// Anomaly threshold: `is_anomaly` = `mmnet_score > threshold`.
    #[getter]
    fn threshold(&self) -> f32 {
        self.inner.threshold.value
    }

    /// SHA-256 of the weights (as in the manifest and in every Kafka score record).
    #[getter]
    fn digest(&self) -> String {
        self.digest.clone()
    }

    /// The score reported as `mmnet_score` (e.g. `mse_logit`).
    #[getter]
    fn score_name(&self) -> &'static str {
        self.inner.score.variant.name()
    }

    /// The manifest as JSON text (the Python layer parses it).
    #[getter]
    fn manifest_json(&self) -> PyResult<String> {
        let m = artifact::manifest(&self.inner).map_err(to_py)?;
        serde_json::to_string(&m).map_err(to_py)
    }

    /// Scores every row of `data`: a `pyarrow.Table` with `mmnet_score`, `s_sum`, `s_kl`,
    /// `is_anomaly` (after the input's columns with `append`). Rows with a null or
    /// non-finite feature get NULL scores. The GIL is released while scoring; f32 columns
    /// are read in place, other numeric types cast once.
    #[pyo3(signature = (data, threshold=None, append=false))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        threshold: Option<f32>,
        append: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = Input::from_py(data)?;
        let model = self.inner.clone();
        let (batches, schema) = py
            .detach(move || score_input(&model, input, threshold, append))
            .map_err(to_py)?;
        Table::try_new(batches, schema)
            .map_err(to_py)?
            .into_pyarrow(py)
    }

    /// Why row `row` (0-based) of `data` scored as it did, as JSON text: the score, S_sum,
    /// S_KL, the MSE, the most attended memory items and the features with the largest
    /// share of the reconstruction error.
    #[pyo3(signature = (data, row, top_memory=5, top_features=5))]
    fn explain_json(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        row: usize,
        top_memory: usize,
        top_features: usize,
    ) -> PyResult<String> {
        let input = Input::from_py(data)?;
        let model = self.inner.clone();
        py.detach(move || -> Result<String, String> {
            let x = match input {
                Input::File(path) => mmnet_arrow::read_row(&path, &model.features, row),
                arrow => {
                    let (source, schema, batches) = arrow.open().map_err(|e| e.to_string())?;
                    mmnet_arrow::row_from_batches(&source, &schema, batches, &model.features, row)
                }
            }
            .map_err(|e| e.to_string())?;
            let e = model
                .explain(x.view(), top_memory, top_features)
                .map_err(|e| e.to_string())?;
            serde_json::to_string(&e.first()).map_err(|e| e.to_string())
        })
        .map_err(to_py)
    }

    /// Addresses of the f32 values the scoring kernel reads for the first batch of `data`,
    /// one per feature: the zero-copy check of the test suite compares them with the
    /// input's own buffers. Not part of the API.
    fn _feature_addresses(&self, data: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
        let (source, schema, mut batches) = Input::from_py(data)?.open().map_err(to_py)?;
        let cols = check_feature_columns(&source, &schema, &self.inner.features).map_err(to_py)?;
        let Some(batch) = batches.next() else {
            return Ok(Vec::new());
        };
        let (x, _) = batch_features(&batch.map_err(to_py)?, &cols).map_err(to_py)?;
        Ok(value_slices(&x)
            .iter()
            .map(|s| s.as_ptr() as usize)
            .collect())
    }

    fn __repr__(&self) -> String {
        format!(
            "mmnet.Model({} features, score {}, threshold {:.6}, digest {})",
            self.inner.features.len(),
            self.inner.score.variant.name(),
            self.inner.threshold.value,
            &self.digest[..12.min(self.digest.len())]
        )
    }
}

/// Scores every batch of `input` as `mmnet score` does, collecting the scored batches.
fn score_input(
    model: &mmnet_core::Model,
    input: Input,
    threshold: Option<f32>,
    append: bool,
) -> Result<(Vec<RecordBatch>, SchemaRef), TableError> {
    let (source, schema, batches) = input.open()?;
    let cols = check_feature_columns(&source, &schema, &model.features)?;
    let empty = Arc::new(Schema::empty());
    let out_schema = scored_schema(&source, if append { &schema } else { &empty })?;
    let mut out = Vec::new();
    for batch in batches {
        let batch = batch?;
        let (x, valid) = batch_features(&batch, &cols)?;
        let scored = model.score_columns(&value_slices(&x), false, threshold, Threads::Rayon)?;
        let base = if append {
            batch
        } else {
            let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            RecordBatch::try_new_with_options(empty.clone(), vec![], &rows)?
        };
        out.push(append_scores(&base, out_schema.clone(), &scored, &valid)?);
    }
    Ok((out, out_schema))
}
