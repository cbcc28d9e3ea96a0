//! # mmnet for Python
//!
//! The native module `mmnet._mmnet` behind the `mmnet` Python package (python/mmnet): the
//! same engine as the CLI, over Arrow data handed in through the Arrow PyCapsule interface
//! (pyarrow, polars, pandas) without copies. The Python layer adds the scikit-learn/PyOD
//! vocabulary (`decision_function`, `predict`) and Spark; everything that touches data or
//! models is here, so the CLI and Python agree to the bit.
//!
//! Depends on mmnet-core and mmnet-arrow's file I/O only (no DataFusion, no rdkafka), so a
//! wheel builds in minutes.

use pyo3::prelude::*;

mod error;
mod input;
mod model;
mod train;

/// AUC-ROC of `scores` (higher = more anomalous) against `labels` (true = anomaly), ties
/// averaged: mmnet-core's metric, the one `mmnet eval` and `mmnet experiment` report.
/// `None` when one class is absent.
#[pyfunction]
fn auc_roc(scores: Vec<f32>, labels: Vec<bool>) -> PyResult<Option<f64>> {
    check_lengths(&scores, &labels)?;
    Ok(mmnet_core::metrics::auc_roc(&scores, &labels))
}

/// Average precision (AUC-PR as scikit-learn defines it), as `mmnet eval` reports it.
#[pyfunction]
fn average_precision(scores: Vec<f32>, labels: Vec<bool>) -> PyResult<Option<f64>> {
    check_lengths(&scores, &labels)?;
    Ok(mmnet_core::metrics::average_precision(&scores, &labels))
}

fn check_lengths(scores: &[f32], labels: &[bool]) -> PyResult<()> {
    if scores.len() != labels.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    Ok(())
}

/// The extension module.
#[pymodule]
fn _mmnet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MmnetError", m.py().get_type::<error::MmnetError>())?;
    m.add_class::<model::Model>()?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(train::experiment, m)?)?;
    m.add_function(wrap_pyfunction!(auc_roc, m)?)?;
    m.add_function(wrap_pyfunction!(average_precision, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
